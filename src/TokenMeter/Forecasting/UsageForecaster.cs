using TokenMeter.Budgets;
using TokenMeter.Querying;

namespace TokenMeter.Forecasting;

/// <summary>
/// Projects this UTC month's cost, for the platform and for each user with a cost budget, from the
/// daily usage the store already keeps: month to date plus the remaining days at the recent rate of
/// their kind (weekday or weekend), with an 80% interval from the spread of recent days.
/// </summary>
public sealed class UsageForecaster
{
    // Two rate windows (for the growth trend), with room for quiet days at their start.
    private const int LookbackDays = 49;

    private readonly IUsageQueries _queries;
    private readonly IBudgetStore? _budgets;
    private readonly TimeProvider _timeProvider;

    /// <summary>Creates a forecaster.</summary>
    /// <param name="queries">Where daily usage is read.</param>
    /// <param name="budgets">Where budgets are read; null when there are none (no user forecasts).</param>
    /// <param name="timeProvider">The clock.</param>
    public UsageForecaster(IUsageQueries queries, IBudgetStore? budgets, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _queries = queries;
        _budgets = budgets;
        _timeProvider = timeProvider;
    }

    /// <summary>The platform's cost this month, projected to its end.</summary>
    /// <param name="cancellationToken">Cancels the queries.</param>
    /// <returns>The forecast.</returns>
    public async ValueTask<CostForecast> ForecastMonthAsync(CancellationToken cancellationToken = default)
    {
        var now = _timeProvider.GetUtcNow();
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var first = HistoryStart(today);
        var rows = await _queries.GetDailyUsageAsync(first, today, cancellationToken).ConfigureAwait(false);

        var daily = new Dictionary<DateOnly, decimal>(rows.Count);
        DateOnly? firstDay = null;
        foreach (var row in rows)
        {
            daily[row.Period] = row.Figures.CostUsd;
            if (row.Figures.Calls > 0 && (firstDay is null || row.Period < firstDay))
            {
                firstDay = row.Period;
            }
        }

        var result = CostProjection.Project(daily, firstDay, now);
        return new CostForecast(
            result.Month, now, result.MonthToDate, result.Projected, result.Low, result.High, result.Method, result.HistoryDays);
    }

    /// <summary>
    /// Users with a monthly cost budget whose projected month reaches it, soonest exhaustion first
    /// (ties by user id).
    /// </summary>
    /// <param name="limit">At most this many users (1 or more).</param>
    /// <param name="cancellationToken">Cancels the queries.</param>
    /// <returns>The users.</returns>
    public async ValueTask<IReadOnlyList<UserCostForecast>> ForecastUsersAsync(int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var forecasts = await ForecastAllUsersAsync(cancellationToken).ConfigureAwait(false);
        return forecasts
            .Where(f => f.ProjectedMonthCostUsd >= f.MonthlyCostUsd)
            .OrderBy(f => f.ProjectedExhaustionDate ?? DateOnly.MaxValue)
            .ThenBy(f => f.UserId, StringComparer.Ordinal)
            .Take(limit)
            .ToList();
    }

    /// <summary>Every user with a monthly cost budget and usage in the recent weeks, projected (ordered by user id).</summary>
    /// <param name="cancellationToken">Cancels the queries.</param>
    /// <returns>The users' projections.</returns>
    public async ValueTask<IReadOnlyList<UserCostForecast>> ForecastAllUsersAsync(CancellationToken cancellationToken = default)
    {
        if (_budgets is null)
        {
            return [];
        }

        var now = _timeProvider.GetUtcNow();
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var settings = await _budgets.GetBudgetsAsync(cancellationToken).ConfigureAwait(false);
        var historyStart = HistoryStart(today);
        var rows = await _queries.GetUserDailyUsageAsync(historyStart, today, null, cancellationToken).ConfigureAwait(false);
        return ForecastUsers(rows, settings, historyStart, now);
    }

    /// <summary>
    /// The users' projections from the daily rows read from <paramref name="historyStart"/> to the day of
    /// <paramref name="now"/>: all of the route's work after the store's read (no clock, no store).
    /// </summary>
    internal static List<UserCostForecast> ForecastUsers(IReadOnlyList<UserDailyUsage> rows, BudgetSettings settings, DateOnly historyStart, DateTimeOffset now)
    {
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var overrides = settings.Users.ToDictionary(u => u.UserId, StringComparer.Ordinal);

        // One user's day costs at a time, in one array over the range read (the projection and the exhaustion date look up
        // days of that range only: a row outside it is not kept), emptied for the next user.
        var result = new List<UserCostForecast>();
        var daily = new DailyCosts(historyStart, today);
        for (int start = 0, end; start < rows.Count; start = end)
        {
            var userId = rows[start].UserId;
            for (end = start + 1; end < rows.Count && string.Equals(rows[end].UserId, userId, StringComparison.Ordinal); end++)
            {
            }

            // The store returns the rows in user-id order (ordinal), so each user's rows are one run (checked where one run
            // ends and the next begins); rows in another order are put in that order (stable, so each user's rows keep
            // theirs) and gone through from the start.
            if (end < rows.Count && string.CompareOrdinal(rows[end].UserId, userId) < 0)
            {
                rows = [.. rows.OrderBy(r => r.UserId, StringComparer.Ordinal)];
                result.Clear();
                end = 0;
                continue;
            }

            var budget = overrides.TryGetValue(userId, out var own) ? own.MonthlyCostUsd : settings.Default?.MonthlyCostUsd;
            if (budget is not { } monthlyCost)
            {
                continue;
            }

            // One pass over the user's rows: the cost of each day and the first day with a call.
            daily.Clear();
            DateOnly? firstDay = null;
            for (var i = start; i < end; i++)
            {
                var row = rows[i];
                daily.Add(row.Date, row.Figures.CostUsd);
                if (row.Figures.Calls > 0 && (firstDay is null || row.Date < firstDay))
                {
                    firstDay = row.Date;
                }
            }

            var projection = CostProjection.Project(daily, firstDay, now);
            result.Add(new UserCostForecast(
                userId,
                projection.MonthToDate,
                projection.Projected,
                monthlyCost,
                ExhaustionDate(projection, daily, monthlyCost, today)));
        }

        return result;
    }

    /// <summary>The day cumulative spend reaches <paramref name="budget"/>: from history when it already has, else along the projection.</summary>
    internal static DateOnly? ExhaustionDate(CostProjectionResult projection, IReadOnlyDictionary<DateOnly, decimal> daily, decimal budget, DateOnly today)
    {
        // The users' forecasts pass their DailyCosts, read directly rather than through the dictionary interface; the path
        // is gone through by index, where foreach over the interface would allocate an enumerator per user.
        var costs = daily as DailyCosts;
        decimal cumulative = 0m;
        for (var d = projection.Month; d <= today; d = d.AddDays(1))
        {
            cumulative += costs is not null ? costs.CostOrZero(d) : daily.GetValueOrDefault(d);
            if (cumulative >= budget)
            {
                return d;
            }
        }

        var path = projection.Path;
        for (var i = 0; i < path.Count; i++)
        {
            cumulative += path[i].ExpectedCostUsd;
            if (cumulative >= budget)
            {
                return path[i].Day;
            }
        }

        return null;
    }

    private static DateOnly HistoryStart(DateOnly today)
    {
        var monthStart = new DateOnly(today.Year, today.Month, 1);
        var lookback = today.AddDays(-LookbackDays);
        return lookback < monthStart ? lookback : monthStart;
    }
}
