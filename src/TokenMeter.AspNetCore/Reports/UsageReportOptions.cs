namespace TokenMeter.AspNetCore.Reports;

/// <summary>Options of the email usage reports, bound from <c>TokenMeter:Reports</c>.</summary>
internal sealed class UsageReportOptions
{
    public const string SectionName = "TokenMeter:Reports";

    /// <summary>Recipients of reports (and of alerts when <c>TokenMeter:Alerts:Email</c> is on).</summary>
    public IList<string> To { get; } = [];

    /// <summary>Which reports are sent on their own: <c>daily</c>, <c>weekly</c>, <c>monthly</c>.</summary>
    public IList<string> Schedule { get; } = [];

    /// <summary>The SMTP server.</summary>
    public SmtpSettings Smtp { get; set; } = new();

    /// <summary>How often the scheduler looks for a report that is due.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a claimed report stays claimed if sending never completes; also the first retry delay.</summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest wait between retries of a failed send.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Scheduled reports go out after this time of day (UTC) for the period just ended.</summary>
    public TimeSpan SendAfterUtc { get; set; } = TimeSpan.FromHours(6);

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Smtp.Host) && To.Count > 0;

    internal IReadOnlyList<ReportPeriod> ScheduledPeriods
        => Schedule.Select(s => ReportPeriods.TryParse(s, out var p) ? p : (ReportPeriod?)null).OfType<ReportPeriod>().Distinct().ToArray();
}

/// <summary>SMTP connection settings (<c>TokenMeter:Reports:Smtp</c>).</summary>
internal sealed class SmtpSettings
{
    public string? Host { get; set; }

    /// <summary>Default 587 (submission with STARTTLS); 465 connects over TLS at once.</summary>
    public int Port { get; set; } = 587;

    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Default true: TLS is required (STARTTLS, or TLS on connect on port 465).</summary>
    public bool UseTls { get; set; } = true;

    /// <summary>The sender address, e.g. <c>TokenMeter &lt;reports@example.com&gt;</c>.</summary>
    public string? From { get; set; }
}
