namespace TokenMeter.Querying;

/// <summary>Calls, tokens, cost and distinct users over a period.</summary>
/// <param name="Figures">Calls, tokens and cost.</param>
/// <param name="ActiveUsers">Distinct non-null users with at least one call.</param>
public sealed record UsagePeriodTotals(UsageFigures Figures, long ActiveUsers)
{
    /// <summary>Nothing.</summary>
    public static UsagePeriodTotals Empty { get; } = new(UsageFigures.Zero, 0);
}

/// <summary>Platform-wide figures: ever, today and this month (UTC).</summary>
/// <param name="Figures">Calls, tokens and cost ever.</param>
/// <param name="ActiveUsers">Distinct users ever.</param>
/// <param name="Today">Today's figures.</param>
/// <param name="ThisMonth">This calendar month's figures.</param>
public sealed record UsageStats(
    UsageFigures Figures,
    long ActiveUsers,
    UsagePeriodTotals Today,
    UsagePeriodTotals ThisMonth);

/// <summary>Sort keys for user summaries.</summary>
public enum UserSummarySort
{
    /// <summary>Total cost.</summary>
    Cost = 0,

    /// <summary>Total tokens.</summary>
    Tokens = 1,

    /// <summary>Number of calls.</summary>
    Calls = 2,

    /// <summary>Time of the last call.</summary>
    LastCall = 3,

    /// <summary>User id (ordinal string order).</summary>
    UserId = 4,
}

/// <summary>Sort direction.</summary>
public enum SortOrder
{
    /// <summary>Smallest first.</summary>
    Ascending = 0,

    /// <summary>Largest first.</summary>
    Descending = 1,
}

/// <summary>A page request for user summaries. Ties are always broken by user id (ordinal, ascending) so pages never overlap.</summary>
/// <param name="Sort">Sort key.</param>
/// <param name="Order">Sort direction.</param>
/// <param name="Limit">Page size, 1..500.</param>
/// <param name="Offset">Rows to skip, 0 or more.</param>
public sealed record UserSummaryQuery(
    UserSummarySort Sort = UserSummarySort.Cost,
    SortOrder Order = SortOrder.Descending,
    int Limit = 50,
    int Offset = 0);

/// <summary>All-time usage of one user.</summary>
/// <param name="UserId">The user.</param>
/// <param name="Figures">Calls, tokens and cost.</param>
/// <param name="LastCallAt">When the user's latest call started.</param>
public sealed record UserUsageSummary(string UserId, UsageFigures Figures, DateTimeOffset? LastCallAt);

/// <summary>One page of user summaries.</summary>
/// <param name="Items">The page.</param>
/// <param name="Total">Number of users with usage, over all pages.</param>
public sealed record UserSummaryPage(IReadOnlyList<UserUsageSummary> Items, long Total);

/// <summary>Usage by endpoint and model.</summary>
/// <param name="Endpoint">Endpoint label (null for calls made outside any labelled scope).</param>
/// <param name="Model">Model.</param>
/// <param name="Figures">Calls, tokens and cost.</param>
public sealed record EndpointUsage(string? Endpoint, string? Model, UsageFigures Figures);

/// <summary>Usage of one user by endpoint and model.</summary>
/// <param name="UserId">The user.</param>
/// <param name="Endpoint">Endpoint label.</param>
/// <param name="Model">Model.</param>
/// <param name="Figures">Calls, tokens and cost.</param>
public sealed record UserEndpointUsage(string UserId, string? Endpoint, string? Model, UsageFigures Figures);

/// <summary>Usage over one UTC day or month.</summary>
/// <param name="Period">The day, or the first day of the month.</param>
/// <param name="Figures">Calls, tokens and cost.</param>
/// <param name="ActiveUsers">Distinct non-null users.</param>
public sealed record PeriodUsage(DateOnly Period, UsageFigures Figures, long ActiveUsers);

/// <summary>One user's usage on one UTC day.</summary>
/// <param name="UserId">The user.</param>
/// <param name="Date">The day.</param>
/// <param name="Figures">Calls, tokens and cost.</param>
public sealed record UserDailyUsage(string UserId, DateOnly Date, UsageFigures Figures);

/// <summary>A user's usage with its breakdowns.</summary>
/// <param name="Summary">All-time totals.</param>
/// <param name="ThisMonth">This calendar month (UTC).</param>
/// <param name="ByEndpoint">All-time usage by endpoint and model, costliest first.</param>
/// <param name="Daily">The last 30 days that had calls, newest first.</param>
public sealed record UserUsageDetail(
    UserUsageSummary Summary,
    UsageFigures ThisMonth,
    IReadOnlyList<UserEndpointUsage> ByEndpoint,
    IReadOnlyList<UserDailyUsage> Daily)
{
    /// <summary>This calendar month's (UTC) calls and cost by where the cost comes from, in <see cref="CostSource"/> order; sources without calls are left out.</summary>
    public IReadOnlyList<CostSourceUsage> ThisMonthByCostSource { get; init; } = [];
}

/// <summary>Calls and cost of one cost source.</summary>
/// <param name="CostSource">Where the cost comes from.</param>
/// <param name="Calls">Calls.</param>
/// <param name="CostUsd">Their cost (unpriced calls count as zero).</param>
public sealed record CostSourceUsage(CostSource CostSource, long Calls, decimal CostUsd);

/// <summary>Which raw records to export.</summary>
/// <param name="From">First UTC day included; null for no lower bound.</param>
/// <param name="To">Last UTC day included; null for no upper bound.</param>
/// <param name="UserId">Only this user's records; null for everyone.</param>
public sealed record UsageExportQuery(DateOnly? From = null, DateOnly? To = null, string? UserId = null);
