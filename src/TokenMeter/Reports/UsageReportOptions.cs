namespace TokenMeter.Reports;

/// <summary>
/// Options of the email usage reports, bound from <c>TokenMeter:Reports</c>. Recipients
/// (<c>TokenMeter:Reports:To</c>) belong to the mail plumbing; the SMTP server to the email sender.
/// </summary>
internal sealed class UsageReportOptions
{
    public const string SectionName = "TokenMeter:Reports";

    /// <summary>Which reports are sent on their own: <c>daily</c>, <c>weekly</c>, <c>monthly</c>.</summary>
    public IList<string> Schedule { get; } = [];

    /// <summary>How often the scheduler looks for a report that is due.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a claimed report stays claimed if sending never completes; also the first retry delay.</summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest wait between retries of a failed send.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Scheduled reports go out after this time of day (UTC) for the period just ended.</summary>
    public TimeSpan SendAfterUtc { get; set; } = TimeSpan.FromHours(6);

    internal IReadOnlyList<ReportPeriod> ScheduledPeriods
        => Schedule.Select(s => ReportPeriods.TryParse(s, out var p) ? p : (ReportPeriod?)null).OfType<ReportPeriod>().Distinct().ToArray();
}
