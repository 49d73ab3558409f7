namespace TokenMeter.Querying;

/// <summary>
/// Everything the admin API, exports, budgets, forecasts and statements read. Each store implements
/// it; the store conformance suite pins down its semantics. Days and months are UTC. Cost sums treat
/// unpriced calls as zero. User-level figures leave out anonymous calls; platform totals include them.
/// </summary>
public interface IUsageQueries
{
    /// <summary>Platform totals ever, on <paramref name="today"/>, and in its month.</summary>
    /// <param name="today">The current UTC day.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The figures.</returns>
    ValueTask<UsageStats> GetStatsAsync(DateOnly today, CancellationToken cancellationToken = default);

    /// <summary>A page of per-user all-time summaries.</summary>
    /// <param name="query">Sort, order and page.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The page and the number of users.</returns>
    ValueTask<UserSummaryPage> GetUserSummariesAsync(UserSummaryQuery query, CancellationToken cancellationToken = default);

    /// <summary>One user's usage; null when the user has no recorded call.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="today">The current UTC day (for "this month" and the 30-day window).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The detail, or null.</returns>
    ValueTask<UserUsageDetail?> GetUserUsageAsync(string userId, DateOnly today, CancellationToken cancellationToken = default);

    /// <summary>One user's totals over a range of days (inclusive), e.g. month to date for budgets.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="firstDay">First day.</param>
    /// <param name="lastDay">Last day.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The figures.</returns>
    ValueTask<UsageFigures> GetUserTotalsAsync(string userId, DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default);

    /// <summary>All-time usage by endpoint and model, costliest first.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>One row per endpoint and model.</returns>
    ValueTask<IReadOnlyList<EndpointUsage>> GetEndpointUsageAsync(CancellationToken cancellationToken = default);

    /// <summary>Usage by user, endpoint and model over a range of days (inclusive), ordered by user id, then cost descending.</summary>
    /// <param name="firstDay">First day.</param>
    /// <param name="lastDay">Last day.</param>
    /// <param name="userId">Only this user; null for every user (anonymous calls left out).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The rows.</returns>
    ValueTask<IReadOnlyList<UserEndpointUsage>> GetUserEndpointUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default);

    /// <summary>Usage per day over a range of days (inclusive), newest first, days without calls left out.</summary>
    /// <param name="firstDay">First day.</param>
    /// <param name="lastDay">Last day.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The days.</returns>
    ValueTask<IReadOnlyList<PeriodUsage>> GetDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default);

    /// <summary>Usage per calendar month over a range of months (inclusive; any day of a month stands for it), newest first, months without calls left out.</summary>
    /// <param name="fromMonth">A day of the first month.</param>
    /// <param name="toMonth">A day of the last month.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The months, each keyed by its first day.</returns>
    ValueTask<IReadOnlyList<PeriodUsage>> GetMonthlyUsageAsync(DateOnly fromMonth, DateOnly toMonth, CancellationToken cancellationToken = default);

    /// <summary>Per-user daily usage over a range of days (inclusive), ordered by user id then day (forecasts read this).</summary>
    /// <param name="firstDay">First day.</param>
    /// <param name="lastDay">Last day.</param>
    /// <param name="userId">Only this user; null for every user.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The rows.</returns>
    ValueTask<IReadOnlyList<UserDailyUsage>> GetUserDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default);

    /// <summary>Raw records, oldest first, streamed without buffering the result.</summary>
    /// <param name="query">Days and user to export.</param>
    /// <param name="cancellationToken">Cancels the stream.</param>
    /// <returns>The records.</returns>
    IAsyncEnumerable<UsageRecord> ExportAsync(UsageExportQuery query, CancellationToken cancellationToken = default);
}
