namespace TokenMeter.Alerts;

/// <summary>
/// Options of budget and platform alerts, bound from <c>TokenMeter:Alerts</c>. Where the webhook goes
/// and how it is retried are <see cref="Delivery.WebhookOptions"/>, bound from the same section.
/// </summary>
public sealed class TokenMeterAlertOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Alerts";

    /// <summary>Percentages of a user's monthly cost budget that fire <c>budget.threshold</c>; null for 80 and 100.</summary>
    public IReadOnlyList<int>? BudgetThresholdsPercent { get; set; }

    /// <summary>The platform's daily cost (UTC day) that fires <c>platform.daily_cost</c>; null for none.</summary>
    public decimal? PlatformDailyCostUsd { get; set; }

    /// <summary>Whether alerts are also mailed to the report recipients (<c>TokenMeter:Reports:To</c>) through the registered email sender.</summary>
    public bool Email { get; set; }

    internal IReadOnlyList<int> EffectiveThresholds => BudgetThresholdsPercent is { Count: > 0 } t ? t : [80, 100];
}
