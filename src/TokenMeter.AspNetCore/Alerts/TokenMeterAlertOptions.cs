namespace TokenMeter.AspNetCore.Alerts;

/// <summary>Options of budget and platform alerts and of the webhook sender, bound from <c>TokenMeter:Alerts</c>.</summary>
public sealed class TokenMeterAlertOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Alerts";

    /// <summary>Where webhook events are POSTed; null turns webhooks off (alerts are still logged and counted).</summary>
    public Uri? WebhookUrl { get; set; }

    /// <summary>The HMAC-SHA256 key of the <c>X-TokenMeter-Signature</c> header; null sends unsigned events.</summary>
    public string? WebhookSecret { get; set; }

    /// <summary>Percentages of a user's monthly cost budget that fire <c>budget.threshold</c>; null for 80 and 100.</summary>
    public IReadOnlyList<int>? BudgetThresholdsPercent { get; set; }

    /// <summary>The platform's daily cost (UTC day) that fires <c>platform.daily_cost</c>; null for none.</summary>
    public decimal? PlatformDailyCostUsd { get; set; }

    /// <summary>Whether alerts are also mailed to the report recipients (sent by the reports feature).</summary>
    public bool Email { get; set; }

    /// <summary>Attempts per webhook event before giving up. Default 6.</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>Wait before the first retry; doubled after each failure. Default 2 seconds.</summary>
    public TimeSpan InitialRetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a claimed alert stays claimed if its delivery never completes (then it may fire again). Default 15 minutes.</summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromMinutes(15);

    internal IReadOnlyList<int> EffectiveThresholds => BudgetThresholdsPercent is { Count: > 0 } t ? t : [80, 100];
}
