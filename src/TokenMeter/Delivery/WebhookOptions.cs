namespace TokenMeter.Delivery;

/// <summary>
/// Where and how webhook events are delivered, bound from <c>TokenMeter:Alerts</c> (the section the
/// alert settings share): the URL, the signing secret and the retry back-off. Alert and statement
/// webhooks both go out this way.
/// </summary>
public sealed class WebhookOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Alerts";

    /// <summary>Where webhook events are POSTed; null turns webhooks off (alerts are still logged and counted).</summary>
    public Uri? WebhookUrl { get; set; }

    /// <summary>The HMAC-SHA256 key of the <c>X-TokenMeter-Signature</c> header; null sends unsigned events.</summary>
    public string? WebhookSecret { get; set; }

    /// <summary>Attempts per event (webhook or alert email) before giving up. Default 6.</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>Wait before the first retry; doubled after each failure. Default 2 seconds.</summary>
    public TimeSpan InitialRetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a claimed delivery stays claimed if it never completes (then it may be sent again). Default 15 minutes.</summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromMinutes(15);
}
