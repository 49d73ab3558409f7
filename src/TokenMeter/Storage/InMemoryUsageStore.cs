using System.Runtime.CompilerServices;
using TokenMeter.Budgets;
using TokenMeter.Pricing;
using TokenMeter.Repricing;
using TokenMeter.Querying;

namespace TokenMeter.Storage;

/// <summary>
/// Keeps usage, budgets and deliveries in process memory: the default store, for development,
/// tests and single-instance apps that can afford to lose history on restart. Thread-safe.
/// </summary>
public sealed class InMemoryUsageStore : IUsageStore, IUsageQueries, IBudgetStore, IDeliveryLog, IUsageRepricingStore
{
    private readonly object _gate = new();
    private readonly List<UsageRecord> _records = [];
    private readonly HashSet<Guid> _ids = [];
    private readonly SortedDictionary<string, UserBudget> _userBudgets = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Kind, string Key), Delivery> _deliveries = [];
    private readonly List<RepricingEntry> _repricings = [];
    private readonly TimeProvider _timeProvider;
    private BudgetLimit? _defaultBudget;

    /// <summary>Creates an empty store on the system clock.</summary>
    public InMemoryUsageStore()
        : this(TimeProvider.System)
    {
    }

    /// <summary>Creates an empty store.</summary>
    /// <param name="timeProvider">The clock that delivery leases run on.</param>
    public InMemoryUsageStore(TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _timeProvider = timeProvider;
    }

    /// <summary>The number of records stored.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _records.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        cancellationToken.ThrowIfCancellationRequested();
        foreach (var record in records)
        {
            ArgumentNullException.ThrowIfNull(record, nameof(records));
        }

        var added = 0;
        lock (_gate)
        {
            foreach (var record in records)
            {
                if (_ids.Add(record.Id))
                {
                    // Stored as a durable store keeps it: an unpriced record says so.
                    var source = CostSourceNames.Effective(record);
                    _records.Add(source == record.CostSource ? record : record with { CostSource = source });
                    added++;
                }
            }
        }

        return ValueTask.FromResult(added);
    }

    /// <inheritdoc />
    public ValueTask<UsageStats> GetStatsAsync(DateOnly today, CancellationToken cancellationToken = default)
    {
        var all = Snapshot();
        var ever = Totals(all);
        var todays = Totals(all.Where(r => Day(r) == today));
        var month = Totals(all.Where(r => SameMonth(Day(r), today)));
        return ValueTask.FromResult(new UsageStats(ever.Figures, ever.ActiveUsers, todays, month));
    }

    /// <inheritdoc />
    public ValueTask<UserSummaryPage> GetUserSummariesAsync(UserSummaryQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1, nameof(query));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, 500, nameof(query));
        ArgumentOutOfRangeException.ThrowIfNegative(query.Offset, nameof(query));

        var summaries = Snapshot()
            .Where(r => r.UserId is not null)
            .GroupBy(r => r.UserId!, StringComparer.Ordinal)
            .Select(g => Summarize(g.Key, g))
            .ToList();

        var descending = query.Order == SortOrder.Descending;
        summaries.Sort((a, b) =>
        {
            var byKey = query.Sort switch
            {
                UserSummarySort.Cost => a.Figures.CostUsd.CompareTo(b.Figures.CostUsd),
                UserSummarySort.Tokens => a.Figures.TotalTokens.CompareTo(b.Figures.TotalTokens),
                UserSummarySort.Calls => a.Figures.Calls.CompareTo(b.Figures.Calls),
                UserSummarySort.LastCall => Nullable.Compare(a.LastCallAt, b.LastCallAt),
                _ => 0,
            };
            if (descending)
            {
                byKey = -byKey;
            }

            if (byKey != 0)
            {
                return byKey;
            }

            // Sorting by user id honours the order; every other key breaks ties by ascending id.
            var byId = string.CompareOrdinal(a.UserId, b.UserId);
            return query.Sort == UserSummarySort.UserId && descending ? -byId : byId;
        });

        IReadOnlyList<UserUsageSummary> page = [.. summaries.Skip(query.Offset).Take(query.Limit)];
        return ValueTask.FromResult(new UserSummaryPage(page, summaries.Count));
    }

    /// <inheritdoc />
    public ValueTask<UserUsageDetail?> GetUserUsageAsync(string userId, DateOnly today, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var mine = Snapshot().Where(r => string.Equals(r.UserId, userId, StringComparison.Ordinal)).ToList();
        if (mine.Count == 0)
        {
            return ValueTask.FromResult<UserUsageDetail?>(null);
        }

        var firstDay = today.AddDays(-29);
        var detail = new UserUsageDetail(
            Summarize(userId, mine),
            UsageFigures.Of(mine.Where(r => SameMonth(Day(r), today))),
            ByEndpoint(mine, userId),
            [.. DailyOf(userId, mine.Where(r => Day(r) >= firstDay && Day(r) <= today)).OrderByDescending(d => d.Date)])
        {
            ThisMonthByCostSource =
            [
                .. mine.Where(r => SameMonth(Day(r), today))
                    .GroupBy(CostSourceNames.Effective)
                    .OrderBy(g => g.Key)
                    .Select(g => new CostSourceUsage(g.Key, g.LongCount(), g.Sum(r => r.CostUsd ?? 0m))),
            ],
        };
        return ValueTask.FromResult<UserUsageDetail?>(detail);
    }

    /// <inheritdoc />
    public ValueTask<UsageFigures> GetUserTotalsAsync(string userId, DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        return ValueTask.FromResult(UsageFigures.Of(Snapshot().Where(r =>
            string.Equals(r.UserId, userId, StringComparison.Ordinal) && InDays(r, firstDay, lastDay))));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<EndpointUsage>> GetEndpointUsageAsync(CancellationToken cancellationToken = default)
    {
        IReadOnlyList<EndpointUsage> rows = [.. Snapshot()
            .GroupBy(r => (r.Endpoint, r.Model))
            .Select(g => new EndpointUsage(g.Key.Endpoint, g.Key.Model, UsageFigures.Of(g)))
            .OrderByDescending(e => e.Figures.CostUsd)
            .ThenBy(e => e.Endpoint, StringComparer.Ordinal)
            .ThenBy(e => e.Model, StringComparer.Ordinal)];
        return ValueTask.FromResult(rows);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<UserEndpointUsage>> GetUserEndpointUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<UserEndpointUsage> rows = [.. Snapshot()
            .Where(r => r.UserId is not null && (userId is null || string.Equals(r.UserId, userId, StringComparison.Ordinal)) && InDays(r, firstDay, lastDay))
            .GroupBy(r => r.UserId!, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => ByEndpoint(g, g.Key))];
        return ValueTask.FromResult(rows);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<PeriodUsage>> GetDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<PeriodUsage> rows = [.. Snapshot()
            .Where(r => InDays(r, firstDay, lastDay))
            .GroupBy(Day)
            .Select(g => Period(g.Key, g))
            .OrderByDescending(p => p.Period)];
        return ValueTask.FromResult(rows);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<PeriodUsage>> GetMonthlyUsageAsync(DateOnly fromMonth, DateOnly toMonth, CancellationToken cancellationToken = default)
    {
        var first = FirstOfMonth(fromMonth);
        var last = FirstOfMonth(toMonth).AddMonths(1).AddDays(-1);
        IReadOnlyList<PeriodUsage> rows = [.. Snapshot()
            .Where(r => InDays(r, first, last))
            .GroupBy(r => FirstOfMonth(Day(r)))
            .Select(g => Period(g.Key, g))
            .OrderByDescending(p => p.Period)];
        return ValueTask.FromResult(rows);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<UserDailyUsage>> GetUserDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<UserDailyUsage> rows = [.. Snapshot()
            .Where(r => r.UserId is not null && (userId is null || string.Equals(r.UserId, userId, StringComparison.Ordinal)) && InDays(r, firstDay, lastDay))
            .GroupBy(r => r.UserId!, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => DailyOf(g.Key, g).OrderBy(d => d.Date))];
        return ValueTask.FromResult(rows);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<UsageRecord> ExportAsync(UsageExportQuery query, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        var rows = Snapshot()
            .Where(r => (query.From is null || Day(r) >= query.From)
                && (query.To is null || Day(r) <= query.To)
                && (query.UserId is null || string.Equals(r.UserId, query.UserId, StringComparison.Ordinal)))
            .OrderBy(r => r.CreatedAt)
            .ThenBy(r => r.Id);
        foreach (var record in rows)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return record;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<BudgetSettings> GetBudgetsAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return ValueTask.FromResult(new BudgetSettings(_defaultBudget, [.. _userBudgets.Values]));
        }
    }

    /// <inheritdoc />
    public ValueTask<BudgetLimit?> GetEffectiveBudgetAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        lock (_gate)
        {
            return ValueTask.FromResult(_userBudgets.TryGetValue(userId, out var own) ? own.Limit : _defaultBudget);
        }
    }

    /// <inheritdoc />
    public ValueTask SetDefaultBudgetAsync(BudgetLimit? limit, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            _defaultBudget = limit;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SetUserBudgetAsync(UserBudget budget, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(budget);
        ArgumentNullException.ThrowIfNull(budget.UserId, nameof(budget));
        lock (_gate)
        {
            _userBudgets[budget.UserId] = budget;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<bool> DeleteUserBudgetAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        lock (_gate)
        {
            return ValueTask.FromResult(_userBudgets.Remove(userId));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryClaimAsync(string kind, string key, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lease, TimeSpan.Zero);
        var now = _timeProvider.GetUtcNow();
        lock (_gate)
        {
            if (_deliveries.TryGetValue((kind, key), out var delivery)
                && (delivery.Completed || delivery.LeaseUntil > now))
            {
                return ValueTask.FromResult(false);
            }

            _deliveries[(kind, key)] = new Delivery(false, now + lease);
            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc />
    public ValueTask CompleteAsync(string kind, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(key);
        lock (_gate)
        {
            _deliveries[(kind, key)] = new Delivery(true, DateTimeOffset.MaxValue);
        }

        return ValueTask.CompletedTask;
    }

    private UsageRecord[] Snapshot()
    {
        lock (_gate)
        {
            return [.. _records];
        }
    }

    private static DateOnly Day(UsageRecord record) => DateOnly.FromDateTime(record.CreatedAt.UtcDateTime);

    private static bool InDays(UsageRecord record, DateOnly firstDay, DateOnly lastDay)
    {
        var day = Day(record);
        return day >= firstDay && day <= lastDay;
    }

    private static bool SameMonth(DateOnly a, DateOnly b) => a.Year == b.Year && a.Month == b.Month;

    private static DateOnly FirstOfMonth(DateOnly day) => new(day.Year, day.Month, 1);

    private static UsagePeriodTotals Totals(IEnumerable<UsageRecord> records)
    {
        var figures = UsageFigures.Zero;
        var users = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            figures += UsageFigures.Of(r);
            if (r.UserId is not null)
            {
                users.Add(r.UserId);
            }
        }

        return new UsagePeriodTotals(figures, users.Count);
    }

    private static UserUsageSummary Summarize(string userId, IEnumerable<UsageRecord> records)
    {
        var figures = UsageFigures.Zero;
        DateTimeOffset? last = null;
        foreach (var r in records)
        {
            figures += UsageFigures.Of(r);
            if (last is null || r.CreatedAt > last)
            {
                last = r.CreatedAt;
            }
        }

        return new UserUsageSummary(userId, figures, last);
    }

    private static List<UserEndpointUsage> ByEndpoint(IEnumerable<UsageRecord> records, string userId) =>
        [.. records
            .GroupBy(r => (r.Endpoint, r.Model))
            .Select(g => new UserEndpointUsage(userId, g.Key.Endpoint, g.Key.Model, UsageFigures.Of(g)))
            .OrderByDescending(e => e.Figures.CostUsd)
            .ThenBy(e => e.Endpoint, StringComparer.Ordinal)
            .ThenBy(e => e.Model, StringComparer.Ordinal)];

    private static IEnumerable<UserDailyUsage> DailyOf(string userId, IEnumerable<UsageRecord> records) =>
        records
            .GroupBy(Day)
            .Select(g => new UserDailyUsage(userId, g.Key, UsageFigures.Of(g)));

    private static PeriodUsage Period(DateOnly period, IEnumerable<UsageRecord> records)
    {
        var totals = Totals(records);
        return new PeriodUsage(period, totals.Figures, totals.ActiveUsers);
    }

    /// <inheritdoc />
    public ValueTask<RepricingResult> RepriceAsync(RepricingPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        cancellationToken.ThrowIfCancellationRequested();
        var from = new DateTimeOffset(plan.Request.From.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var to = new DateTimeOffset(plan.Request.To.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var tally = new RepricingTally(plan);

        // Under the one lock every reader takes: a query sees the records before or after, never between.
        lock (_gate)
        {
            var changes = new List<(int Index, UsageRecord Record)>();
            for (var i = 0; i < _records.Count; i++)
            {
                var record = _records[i];
                if (record.CreatedAt >= from && record.CreatedAt < to && tally.Add(record) is { } repriced)
                {
                    changes.Add((i, repriced));
                }
            }

            if (!plan.Request.DryRun)
            {
                foreach (var (index, record) in changes)
                {
                    _records[index] = record;
                }

                _repricings.Add(tally.ToEntry());
            }
        }

        return ValueTask.FromResult(tally.ToResult());
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<RepricingEntry>> GetRepricingsAsync(int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        lock (_gate)
        {
            IReadOnlyList<RepricingEntry> newest = [.. _repricings.OrderByDescending(r => r.At).ThenByDescending(r => r.Id).Take(limit)];
            return ValueTask.FromResult(newest);
        }
    }

    private readonly record struct Delivery(bool Completed, DateTimeOffset LeaseUntil);
}
