using System.Globalization;

namespace TokenMeter.Reports;

/// <summary>How long a report's period is.</summary>
internal enum ReportPeriod
{
    Daily = 0,
    Weekly = 1,
    Monthly = 2,
}

/// <summary>A report's days (inclusive), UTC.</summary>
internal readonly record struct ReportRange(DateOnly From, DateOnly To)
{
    public int Days => To.DayNumber - From.DayNumber + 1;
}

/// <summary>Period arithmetic: the period just ended, the one before, when a report is due, its delivery key.</summary>
internal static class ReportPeriods
{
    public static bool TryParse(string? text, out ReportPeriod period)
    {
        switch (text?.Trim().ToUpperInvariant())
        {
            case "DAILY":
                period = ReportPeriod.Daily;
                return true;
            case "WEEKLY":
                period = ReportPeriod.Weekly;
                return true;
            case "MONTHLY":
                period = ReportPeriod.Monthly;
                return true;
            default:
                period = default;
                return false;
        }
    }

    public static string Name(ReportPeriod period) => period switch
    {
        ReportPeriod.Daily => "daily",
        ReportPeriod.Weekly => "weekly",
        _ => "monthly",
    };

    /// <summary>The latest period that has ended before <paramref name="today"/>: yesterday, last Monday–Sunday week, or last month.</summary>
    public static ReportRange LastEnded(ReportPeriod period, DateOnly today)
    {
        switch (period)
        {
            case ReportPeriod.Daily:
                return new ReportRange(today.AddDays(-1), today.AddDays(-1));
            case ReportPeriod.Weekly:
                var monday = today.AddDays(-(((int)today.DayOfWeek + 6) % 7));
                return new ReportRange(monday.AddDays(-7), monday.AddDays(-1));
            default:
                var thisMonth = new DateOnly(today.Year, today.Month, 1);
                return new ReportRange(thisMonth.AddMonths(-1), thisMonth.AddDays(-1));
        }
    }

    /// <summary>The period just before <paramref name="range"/>, of the same kind.</summary>
    public static ReportRange Previous(ReportPeriod period, ReportRange range) => period switch
    {
        ReportPeriod.Monthly => new ReportRange(range.From.AddMonths(-1), range.From.AddDays(-1)),
        _ => new ReportRange(range.From.AddDays(-range.Days), range.From.AddDays(-1)),
    };

    /// <summary>When the report of <paramref name="range"/> may go out: the day after it ends, at <paramref name="sendAfterUtc"/>.</summary>
    public static DateTimeOffset DueAt(ReportRange range, TimeSpan sendAfterUtc)
        => new DateTimeOffset(range.To.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero) + sendAfterUtc;

    /// <summary>The delivery-log kind of a scheduled report.</summary>
    public static string DeliveryKind(ReportPeriod period) => "report." + Name(period);

    /// <summary>The delivery-log key of a period: <c>2026-11-24</c>, <c>2026-11-16..2026-11-22</c> or <c>2026-10</c>.</summary>
    public static string DeliveryKey(ReportPeriod period, ReportRange range) => period switch
    {
        ReportPeriod.Daily => range.From.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        ReportPeriod.Weekly => range.From.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + ".." + range.To.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        _ => range.From.ToString("yyyy-MM", CultureInfo.InvariantCulture),
    };
}
