using Microsoft.Extensions.Time.Testing;
using TokenMeter.Budgets;
using TokenMeter.Pricing;
using TokenMeter.Querying;
using TokenMeter.Repricing;
using Xunit;

namespace TokenMeter.Testing.Conformance;

/// <summary>
/// The semantics every usage store must share, written once with hand-computed expectations.
/// Subclass it in a test project and return a fresh, empty store from
/// <see cref="CreateStoreAsync"/>; xunit runs every test below against it.
/// <para>
/// Rules pinned here: days and months are UTC whatever the offset a timestamp carries; unpriced
/// calls (null cost) count as zero cost; anonymous calls (null user) count in platform totals and
/// per-endpoint/day/month rows but never as a user; ties in user summaries are broken by user id
/// in ordinal (C collation) order, ascending; daily/monthly rows are newest first; export is
/// oldest first with inclusive days; costs keep at least 12 decimal places; delivery leases run
/// on the <see cref="TimeProvider"/> passed to the factory. Nothing here reads the real clock.
/// </para>
/// </summary>
public abstract class UsageStoreConformanceTests : IAsyncLifetime
{
    /// <summary>The "current day" of every query below.</summary>
    protected static readonly DateOnly Today = new(2026, 3, 15);

    private ConformanceStore? _store;

    /// <summary>The clock the store must use for delivery leases; starts at noon of <see cref="Today"/>.</summary>
    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 3, 15, 12, 0, 0, TimeSpan.Zero));

    /// <summary>The store under test.</summary>
    protected ConformanceStore Store => _store ?? throw new InvalidOperationException("Not initialized.");

    /// <summary>Creates a fresh, empty store that reads time (for delivery leases) from <paramref name="timeProvider"/>.</summary>
    /// <param name="timeProvider">The test's clock.</param>
    /// <returns>The store.</returns>
    protected abstract ValueTask<ConformanceStore> CreateStoreAsync(TimeProvider timeProvider);

    /// <inheritdoc />
    public async Task InitializeAsync() => _store = await CreateStoreAsync(Time);

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    // ---------------------------------------------------------------- data

    /// <summary>A UTC instant.</summary>
    protected static DateTimeOffset Utc(int year, int month, int day, int hour = 12, int minute = 0, int second = 0, int millisecond = 0) =>
        new(year, month, day, hour, minute, second, millisecond, TimeSpan.Zero);

    /// <summary>Figures in <see cref="UsageFigures"/> order: calls, input, cached, output, reasoning, total tokens, cost.</summary>
    protected static UsageFigures F(long calls, long input, long cached, long output, long reasoning, long total, decimal cost) =>
        new(calls, input, cached, output, reasoning, total, cost);

    /// <summary>A call; total tokens = input + output.</summary>
    public static UsageRecord Call(string? user, DateTimeOffset at, string? endpoint, string? model, long input, long output, decimal? cost, long cached = 0, long reasoning = 0) => new()
    {
        Id = Guid.CreateVersion7(at),
        CreatedAt = at,
        UserId = user,
        Endpoint = endpoint,
        Operation = UsageOperation.Chat,
        RequestModel = model,
        Model = model,
        InputTokens = input,
        CachedInputTokens = cached,
        OutputTokens = output,
        ReasoningTokens = reasoning,
        TotalTokens = input + output,
        CostUsd = cost,
        PriceId = cost is null ? null : model + "/standard/2024-08-06",
    };

    /// <summary>
    /// The platform data set. Today is 2026-03-15.
    /// <code>
    ///  #  user   created (UTC)              endpoint      model        in    cached out   reas  total cost
    ///  1  alice  2026-03-15 08:00           /api/analyze  gpt-4o       1000  200    500   0     1500  0.010
    ///  2  alice  2026-03-15 23:59:59.999    /api/chat     gpt-4o-mini  100   0      50    0     150   0.001
    ///  3  bob    2026-03-14 12:00           /api/analyze  gpt-4o       2000  0      1000  0     3000  0.020
    ///  4  null   2026-03-15 10:00           /api/hint     gpt-4o-mini  300   0      100   0     400   0.002
    ///  5  carol  2026-03-01 00:00           /api/verify   o3           500   0      2000  1500  2500  0.030
    ///  6  bob    2026-02-28 23:59:59        /api/chat     gpt-4o-mini  50    0      50    0     100   null
    ///  7  dave   2025-12-31 23:30           /api/analyze  gpt-4o       10    0      10    0     20    0.005
    ///  8  alice  2026-01-01 00:30           /api/analyze  gpt-4o       10    0      10    0     20    0.004
    ///  9  null   2026-02-10 12:00           null          gpt-4o       5     0      5     0     10    0.001
    /// 10  carol  2026-03-16 01:00 +05:00    /api/chat     gpt-4o-mini  40    0      60    0     100   0.0015
    ///            (= 2026-03-15 20:00 UTC: a UTC day, whatever the offset says)
    /// </code>
    /// </summary>
    protected static UsageRecord[] PlatformRecords() =>
    [
        Call("alice", Utc(2026, 3, 15, 8), "/api/analyze", "gpt-4o", 1000, 500, 0.010m, cached: 200),
        Call("alice", Utc(2026, 3, 15, 23, 59, 59, 999), "/api/chat", "gpt-4o-mini", 100, 50, 0.001m),
        Call("bob", Utc(2026, 3, 14, 12), "/api/analyze", "gpt-4o", 2000, 1000, 0.020m),
        Call(null, Utc(2026, 3, 15, 10), "/api/hint", "gpt-4o-mini", 300, 100, 0.002m),
        Call("carol", Utc(2026, 3, 1, 0), "/api/verify", "o3", 500, 2000, 0.030m, reasoning: 1500),
        Call("bob", Utc(2026, 2, 28, 23, 59, 59), "/api/chat", "gpt-4o-mini", 50, 50, null),
        Call("dave", Utc(2025, 12, 31, 23, 30), "/api/analyze", "gpt-4o", 10, 10, 0.005m),
        Call("alice", Utc(2026, 1, 1, 0, 30), "/api/analyze", "gpt-4o", 10, 10, 0.004m),
        Call(null, Utc(2026, 2, 10, 12), null, "gpt-4o", 5, 5, 0.001m),
        Call("carol", new DateTimeOffset(2026, 3, 16, 1, 0, 0, TimeSpan.FromHours(5)), "/api/chat", "gpt-4o-mini", 40, 60, 0.0015m),
    ];

    /// <summary>Stores the platform data set and returns it.</summary>
    protected async Task<UsageRecord[]> SeedPlatformAsync()
    {
        var records = PlatformRecords();
        Assert.Equal(records.Length, await Store.Usage.AppendAsync(records));
        return records;
    }

    private async Task<List<UsageRecord>> ExportAsync(UsageExportQuery query)
    {
        var list = new List<UsageRecord>();
        await foreach (var r in Store.Queries.ExportAsync(query))
        {
            list.Add(r);
        }

        return list;
    }

    // ---------------------------------------------------------------- stats

    [Fact]
    public async Task Stats_EmptyStore_AllZero()
    {
        var stats = await Store.Queries.GetStatsAsync(Today);

        Assert.Equal(new UsageStats(UsageFigures.Zero, 0, UsagePeriodTotals.Empty, UsagePeriodTotals.Empty), stats);
    }

    [Fact]
    public async Task Stats_TodayMonthEver_AnonymousCallsCountedButNotAsUsers()
    {
        await SeedPlatformAsync();

        var stats = await Store.Queries.GetStatsAsync(Today);

        Assert.Equal(F(10, 4015, 200, 3785, 1500, 7800, 0.0745m), stats.Figures);
        Assert.Equal(4, stats.ActiveUsers);
        Assert.Equal(new UsagePeriodTotals(F(4, 1440, 200, 710, 0, 2150, 0.0145m), 2), stats.Today);
        Assert.Equal(new UsagePeriodTotals(F(6, 3940, 200, 3710, 1500, 7650, 0.0645m), 3), stats.ThisMonth);
    }

    [Fact]
    public async Task Stats_OtherToday_MovesTheWindows()
    {
        await SeedPlatformAsync();

        var stats = await Store.Queries.GetStatsAsync(new DateOnly(2026, 2, 28));

        Assert.Equal(new UsagePeriodTotals(F(1, 50, 0, 50, 0, 100, 0m), 1), stats.Today);
        Assert.Equal(new UsagePeriodTotals(F(2, 55, 0, 55, 0, 110, 0.001m), 1), stats.ThisMonth);
        Assert.Equal(10, stats.Figures.Calls);
    }

    // ---------------------------------------------------------------- summaries

    [Theory]
    [InlineData(UserSummarySort.Cost, SortOrder.Descending, "carol,bob,alice,dave")]
    [InlineData(UserSummarySort.Cost, SortOrder.Ascending, "dave,alice,bob,carol")]
    [InlineData(UserSummarySort.Tokens, SortOrder.Descending, "bob,carol,alice,dave")]
    [InlineData(UserSummarySort.Tokens, SortOrder.Ascending, "dave,alice,carol,bob")]
    [InlineData(UserSummarySort.Calls, SortOrder.Descending, "alice,bob,carol,dave")]
    [InlineData(UserSummarySort.Calls, SortOrder.Ascending, "dave,bob,carol,alice")]
    [InlineData(UserSummarySort.LastCall, SortOrder.Descending, "alice,carol,bob,dave")]
    [InlineData(UserSummarySort.LastCall, SortOrder.Ascending, "dave,bob,carol,alice")]
    [InlineData(UserSummarySort.UserId, SortOrder.Ascending, "alice,bob,carol,dave")]
    [InlineData(UserSummarySort.UserId, SortOrder.Descending, "dave,carol,bob,alice")]
    public async Task Summaries_EachSortKeyAndOrder(UserSummarySort sort, SortOrder order, string expected)
    {
        await SeedPlatformAsync();

        var page = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(sort, order, 50, 0));

        Assert.Equal(expected, string.Join(",", page.Items.Select(s => s.UserId)));
        Assert.Equal(4, page.Total);
    }

    [Fact]
    public async Task Summaries_Figures_AllTimeAndAnonymousLeftOut()
    {
        await SeedPlatformAsync();

        var page = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.UserId, SortOrder.Ascending));

        Assert.Equal(
            [
                new UserUsageSummary("alice", F(3, 1110, 200, 560, 0, 1670, 0.015m), Utc(2026, 3, 15, 23, 59, 59, 999)),
                new UserUsageSummary("bob", F(2, 2050, 0, 1050, 0, 3100, 0.020m), Utc(2026, 3, 14, 12)),
                new UserUsageSummary("carol", F(2, 540, 0, 2060, 1500, 2600, 0.0315m), Utc(2026, 3, 15, 20)),
                new UserUsageSummary("dave", F(1, 10, 0, 10, 0, 20, 0.005m), Utc(2025, 12, 31, 23, 30)),
            ],
            page.Items);
    }

    [Fact]
    public async Task Summaries_Pagination_LimitOffsetAndTotal()
    {
        await SeedPlatformAsync();

        var first = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.Cost, SortOrder.Descending, 3, 0));
        var second = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.Cost, SortOrder.Descending, 3, 3));
        var beyond = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.Cost, SortOrder.Descending, 3, 10));

        Assert.Equal(["carol", "bob", "alice"], first.Items.Select(s => s.UserId));
        Assert.Equal(["dave"], second.Items.Select(s => s.UserId));
        Assert.Empty(beyond.Items);
        Assert.All([first, second, beyond], p => Assert.Equal(4, p.Total));
    }

    /// <summary>User ids in ordinal (C collation) order: upper case before lower case, digits compared as characters.</summary>
    private static readonly string[] TiedUsers = ["B", "a10", "a9", "b", "user-1", "user-2", "\u00e4"];

    [Theory]
    [InlineData(UserSummarySort.Cost, SortOrder.Descending)]
    [InlineData(UserSummarySort.Cost, SortOrder.Ascending)]
    [InlineData(UserSummarySort.Tokens, SortOrder.Descending)]
    [InlineData(UserSummarySort.Calls, SortOrder.Ascending)]
    [InlineData(UserSummarySort.LastCall, SortOrder.Descending)]
    [InlineData(UserSummarySort.UserId, SortOrder.Ascending)]
    [InlineData(UserSummarySort.UserId, SortOrder.Descending)]
    public async Task Summaries_Ties_BrokenByUserIdAscending_PagesNeverOverlap(UserSummarySort sort, SortOrder order)
    {
        // Same cost, tokens, calls and last call for everyone: only the tie-break orders them.
        var at = Utc(2026, 3, 10, 9);
        var shuffled = TiedUsers.Reverse().Select(u => Call(u, at, "/api/chat", "gpt-4o", 10, 10, 0.25m)).ToArray();
        await Store.Usage.AppendAsync(shuffled);

        var seen = new List<string>();
        for (var offset = 0; offset < TiedUsers.Length; offset += 2)
        {
            var page = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(sort, order, 2, offset));
            Assert.Equal(TiedUsers.Length, page.Total);
            seen.AddRange(page.Items.Select(s => s.UserId));
        }

        var expected = sort == UserSummarySort.UserId && order == SortOrder.Descending ? TiedUsers.Reverse() : TiedUsers;
        Assert.Equal(expected, seen);
    }

    [Fact]
    public async Task Summaries_TiesWithinDistinctValues_OrderedByKeyThenUserId()
    {
        await Store.Usage.AppendAsync(
        [
            Call("zed", Utc(2026, 3, 1), "/a", "m", 1, 1, 2m),
            Call("amy", Utc(2026, 3, 2), "/a", "m", 1, 1, 1m),
            Call("max", Utc(2026, 3, 3), "/a", "m", 1, 1, 2m),
            Call("bea", Utc(2026, 3, 4), "/a", "m", 1, 1, 1m),
        ]);

        var desc = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.Cost, SortOrder.Descending));
        var asc = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.Cost, SortOrder.Ascending));

        Assert.Equal(["max", "zed", "amy", "bea"], desc.Items.Select(s => s.UserId));
        Assert.Equal(["amy", "bea", "max", "zed"], asc.Items.Select(s => s.UserId));
    }

    // ---------------------------------------------------------------- one user

    /// <summary>
    /// alice's calls for the detail tests (today 2026-03-15, so the 30-day window is 2026-02-14..2026-03-15):
    /// <code>
    /// a1 2026-03-15 08:00        /api/analyze gpt-4o      in 1000 cached 200 out 500 total 1500 cost 0.010
    /// a2 2026-03-15 23:59:59.999 /api/chat    gpt-4o-mini in 100  out 50   total 150  cost 0.001
    /// a3 2026-02-14 00:00        /api/hint    gpt-4o-mini in 20   out 20   total 40   cost 0.0002 (first day of the window)
    /// a4 2026-02-13 23:59:59     /api/hint    gpt-4o-mini in 30   out 30   total 60   cost 0.0003 (just outside)
    /// a5 2026-01-01 00:30        /api/analyze gpt-4o      in 10   out 10   total 20   cost 0.004
    /// a6 2026-03-02 12:00        /api/analyze gpt-4o      in 5    out 5    total 10   cost null
    /// plus bob and an anonymous call on 2026-03-15 that must not leak in.
    /// </code>
    /// </summary>
    private async Task SeedAliceAsync() => await Store.Usage.AppendAsync(
    [
        Call("alice", Utc(2026, 3, 15, 8), "/api/analyze", "gpt-4o", 1000, 500, 0.010m, cached: 200),
        Call("alice", Utc(2026, 3, 15, 23, 59, 59, 999), "/api/chat", "gpt-4o-mini", 100, 50, 0.001m),
        Call("alice", Utc(2026, 2, 14, 0), "/api/hint", "gpt-4o-mini", 20, 20, 0.0002m),
        Call("alice", Utc(2026, 2, 13, 23, 59, 59), "/api/hint", "gpt-4o-mini", 30, 30, 0.0003m),
        Call("alice", Utc(2026, 1, 1, 0, 30), "/api/analyze", "gpt-4o", 10, 10, 0.004m),
        Call("alice", Utc(2026, 3, 2, 12), "/api/analyze", "gpt-4o", 5, 5, null),
        Call("bob", Utc(2026, 3, 15, 9), "/api/analyze", "gpt-4o", 100, 100, 1m),
        Call(null, Utc(2026, 3, 15, 9), "/api/analyze", "gpt-4o", 100, 100, 2m),
    ]);

    [Fact]
    public async Task UserUsage_SummaryThisMonthByEndpointAndLast30Days()
    {
        await SeedAliceAsync();

        var detail = await Store.Queries.GetUserUsageAsync("alice", Today);

        Assert.NotNull(detail);
        Assert.Equal(new UserUsageSummary("alice", F(6, 1165, 200, 615, 0, 1780, 0.0155m), Utc(2026, 3, 15, 23, 59, 59, 999)), detail.Summary);
        Assert.Equal(F(3, 1105, 200, 555, 0, 1660, 0.011m), detail.ThisMonth);
        Assert.Equal(
            [
                new UserEndpointUsage("alice", "/api/analyze", "gpt-4o", F(3, 1015, 200, 515, 0, 1530, 0.014m)),
                new UserEndpointUsage("alice", "/api/chat", "gpt-4o-mini", F(1, 100, 0, 50, 0, 150, 0.001m)),
                new UserEndpointUsage("alice", "/api/hint", "gpt-4o-mini", F(2, 50, 0, 50, 0, 100, 0.0005m)),
            ],
            detail.ByEndpoint);
        Assert.Equal(
            [
                new UserDailyUsage("alice", new DateOnly(2026, 3, 15), F(2, 1100, 200, 550, 0, 1650, 0.011m)),
                new UserDailyUsage("alice", new DateOnly(2026, 3, 2), F(1, 5, 0, 5, 0, 10, 0m)),
                new UserDailyUsage("alice", new DateOnly(2026, 2, 14), F(1, 20, 0, 20, 0, 40, 0.0002m)),
            ],
            detail.Daily);
    }

    [Fact]
    public async Task UserUsage_UnknownUser_Null()
    {
        await SeedAliceAsync();

        Assert.Null(await Store.Queries.GetUserUsageAsync("nobody", Today));
        Assert.Null(await Store.Queries.GetUserUsageAsync("ALICE", Today));
    }

    [Fact]
    public async Task UserTotals_InclusiveRange()
    {
        await SeedAliceAsync();

        Assert.Equal(F(2, 25, 0, 25, 0, 50, 0.0002m), await Store.Queries.GetUserTotalsAsync("alice", new DateOnly(2026, 2, 14), new DateOnly(2026, 3, 2)));
        Assert.Equal(F(3, 1105, 200, 555, 0, 1660, 0.011m), await Store.Queries.GetUserTotalsAsync("alice", new DateOnly(2026, 3, 1), Today));
        Assert.Equal(F(1, 100, 0, 100, 0, 200, 1m), await Store.Queries.GetUserTotalsAsync("bob", Today, Today));
        Assert.Equal(UsageFigures.Zero, await Store.Queries.GetUserTotalsAsync("alice", new DateOnly(2026, 3, 3), new DateOnly(2026, 3, 14)));
        Assert.Equal(UsageFigures.Zero, await Store.Queries.GetUserTotalsAsync("nobody", new DateOnly(2020, 1, 1), Today));
    }

    // ---------------------------------------------------------------- endpoints

    [Fact]
    public async Task EndpointUsage_AllTimeByEndpointAndModel_CostliestFirst_AnonymousIncluded()
    {
        await SeedPlatformAsync();

        var rows = await Store.Queries.GetEndpointUsageAsync();

        Assert.Equal(
            [
                new EndpointUsage("/api/analyze", "gpt-4o", F(4, 3020, 200, 1520, 0, 4540, 0.039m)),
                new EndpointUsage("/api/verify", "o3", F(1, 500, 0, 2000, 1500, 2500, 0.030m)),
                new EndpointUsage("/api/chat", "gpt-4o-mini", F(3, 190, 0, 160, 0, 350, 0.0025m)),
                new EndpointUsage("/api/hint", "gpt-4o-mini", F(1, 300, 0, 100, 0, 400, 0.002m)),
                new EndpointUsage(null, "gpt-4o", F(1, 5, 0, 5, 0, 10, 0.001m)),
            ],
            rows);
    }

    [Fact]
    public async Task UserEndpointUsage_RangeOrderedByUserThenCost_AnonymousLeftOut()
    {
        await SeedPlatformAsync();

        var all = await Store.Queries.GetUserEndpointUsageAsync(new DateOnly(2026, 3, 1), Today);
        var carol = await Store.Queries.GetUserEndpointUsageAsync(new DateOnly(2026, 3, 1), Today, "carol");

        Assert.Equal(
            [
                new UserEndpointUsage("alice", "/api/analyze", "gpt-4o", F(1, 1000, 200, 500, 0, 1500, 0.010m)),
                new UserEndpointUsage("alice", "/api/chat", "gpt-4o-mini", F(1, 100, 0, 50, 0, 150, 0.001m)),
                new UserEndpointUsage("bob", "/api/analyze", "gpt-4o", F(1, 2000, 0, 1000, 0, 3000, 0.020m)),
                new UserEndpointUsage("carol", "/api/verify", "o3", F(1, 500, 0, 2000, 1500, 2500, 0.030m)),
                new UserEndpointUsage("carol", "/api/chat", "gpt-4o-mini", F(1, 40, 0, 60, 0, 100, 0.0015m)),
            ],
            all);
        Assert.Equal(all.Where(r => r.UserId == "carol"), carol);
    }

    // ---------------------------------------------------------------- days and months

    [Fact]
    public async Task DailyUsage_NewestFirst_EmptyDaysLeftOut_UtcDays()
    {
        await SeedPlatformAsync();

        var rows = await Store.Queries.GetDailyUsageAsync(new DateOnly(2026, 2, 28), Today);

        Assert.Equal(
            [
                new PeriodUsage(new DateOnly(2026, 3, 15), F(4, 1440, 200, 710, 0, 2150, 0.0145m), 2),
                new PeriodUsage(new DateOnly(2026, 3, 14), F(1, 2000, 0, 1000, 0, 3000, 0.020m), 1),
                new PeriodUsage(new DateOnly(2026, 3, 1), F(1, 500, 0, 2000, 1500, 2500, 0.030m), 1),
                new PeriodUsage(new DateOnly(2026, 2, 28), F(1, 50, 0, 50, 0, 100, 0m), 1),
            ],
            rows);
    }

    [Fact]
    public async Task DailyUsage_AcrossYearBoundary_AndAnonymousOnlyDay()
    {
        await SeedPlatformAsync();

        var newYear = await Store.Queries.GetDailyUsageAsync(new DateOnly(2025, 12, 31), new DateOnly(2026, 1, 1));
        var anonymous = await Store.Queries.GetDailyUsageAsync(new DateOnly(2026, 2, 1), new DateOnly(2026, 2, 10));
        var none = await Store.Queries.GetDailyUsageAsync(new DateOnly(2026, 1, 2), new DateOnly(2026, 2, 9));

        Assert.Equal(
            [
                new PeriodUsage(new DateOnly(2026, 1, 1), F(1, 10, 0, 10, 0, 20, 0.004m), 1),
                new PeriodUsage(new DateOnly(2025, 12, 31), F(1, 10, 0, 10, 0, 20, 0.005m), 1),
            ],
            newYear);
        Assert.Equal([new PeriodUsage(new DateOnly(2026, 2, 10), F(1, 5, 0, 5, 0, 10, 0.001m), 0)], anonymous);
        Assert.Empty(none);
    }

    [Fact]
    public async Task MonthlyUsage_NewestFirst_AcrossYearBoundary_AnyDayStandsForItsMonth()
    {
        await SeedPlatformAsync();

        var rows = await Store.Queries.GetMonthlyUsageAsync(new DateOnly(2025, 12, 15), new DateOnly(2026, 3, 1));
        var january = await Store.Queries.GetMonthlyUsageAsync(new DateOnly(2026, 1, 31), new DateOnly(2026, 1, 31));

        Assert.Equal(
            [
                new PeriodUsage(new DateOnly(2026, 3, 1), F(6, 3940, 200, 3710, 1500, 7650, 0.0645m), 3),
                new PeriodUsage(new DateOnly(2026, 2, 1), F(2, 55, 0, 55, 0, 110, 0.001m), 1),
                new PeriodUsage(new DateOnly(2026, 1, 1), F(1, 10, 0, 10, 0, 20, 0.004m), 1),
                new PeriodUsage(new DateOnly(2025, 12, 1), F(1, 10, 0, 10, 0, 20, 0.005m), 1),
            ],
            rows);
        Assert.Equal([new PeriodUsage(new DateOnly(2026, 1, 1), F(1, 10, 0, 10, 0, 20, 0.004m), 1)], january);
    }

    [Fact]
    public async Task UserDailyUsage_OrderedByUserThenDay_AnonymousLeftOut()
    {
        await SeedPlatformAsync();

        var all = await Store.Queries.GetUserDailyUsageAsync(new DateOnly(2026, 2, 28), Today);
        var bob = await Store.Queries.GetUserDailyUsageAsync(new DateOnly(2026, 2, 28), Today, "bob");

        Assert.Equal(
            [
                new UserDailyUsage("alice", new DateOnly(2026, 3, 15), F(2, 1100, 200, 550, 0, 1650, 0.011m)),
                new UserDailyUsage("bob", new DateOnly(2026, 2, 28), F(1, 50, 0, 50, 0, 100, 0m)),
                new UserDailyUsage("bob", new DateOnly(2026, 3, 14), F(1, 2000, 0, 1000, 0, 3000, 0.020m)),
                new UserDailyUsage("carol", new DateOnly(2026, 3, 1), F(1, 500, 0, 2000, 1500, 2500, 0.030m)),
                new UserDailyUsage("carol", new DateOnly(2026, 3, 15), F(1, 40, 0, 60, 0, 100, 0.0015m)),
            ],
            all);
        Assert.Equal(all.Where(r => r.UserId == "bob"), bob);
    }

    // ---------------------------------------------------------------- export

    [Fact]
    public async Task Export_NoFilter_EverythingOldestFirst()
    {
        var records = await SeedPlatformAsync();

        var exported = await ExportAsync(new UsageExportQuery());

        Assert.Equal(new[] { 7, 8, 9, 6, 5, 3, 1, 4, 10, 2 }.Select(n => records[n - 1].Id), exported.Select(r => r.Id));
    }

    [Fact]
    public async Task Export_FromToInclusive_UtcDays()
    {
        var records = await SeedPlatformAsync();

        var range = await ExportAsync(new UsageExportQuery(new DateOnly(2026, 3, 14), Today));
        var upTo = await ExportAsync(new UsageExportQuery(To: new DateOnly(2026, 2, 28)));
        var from = await ExportAsync(new UsageExportQuery(From: Today));

        Assert.Equal(new[] { 3, 1, 4, 10, 2 }.Select(n => records[n - 1].Id), range.Select(r => r.Id));
        Assert.Equal(new[] { 7, 8, 9, 6 }.Select(n => records[n - 1].Id), upTo.Select(r => r.Id));
        Assert.Equal(new[] { 1, 4, 10, 2 }.Select(n => records[n - 1].Id), from.Select(r => r.Id));
    }

    [Fact]
    public async Task Export_ByUser()
    {
        var records = await SeedPlatformAsync();

        var alice = await ExportAsync(new UsageExportQuery(UserId: "alice"));
        var aliceMarch = await ExportAsync(new UsageExportQuery(new DateOnly(2026, 3, 1), new DateOnly(2026, 3, 31), "alice"));
        var nobody = await ExportAsync(new UsageExportQuery(UserId: "nobody"));

        Assert.Equal(new[] { 8, 1, 2 }.Select(n => records[n - 1].Id), alice.Select(r => r.Id));
        Assert.Equal(new[] { 1, 2 }.Select(n => records[n - 1].Id), aliceMarch.Select(r => r.Id));
        Assert.Empty(nobody);
    }

    [Fact]
    public async Task Export_EveryFieldRoundTrips()
    {
        var original = new UsageRecord
        {
            Id = Guid.CreateVersion7(Utc(2026, 3, 15, 9, 30, 15, 123)),
            CreatedAt = Utc(2026, 3, 15, 9, 30, 15, 123),
            UserId = "user-42",
            Endpoint = "/api/analyze",
            Operation = UsageOperation.Responses,
            RequestModel = "gpt-4o",
            Model = "gpt-4o-2024-08-06",
            ServiceTier = "priority",
            InputTokens = 12345,
            CachedInputTokens = 2345,
            CacheWriteTokens = 1234,
            OutputTokens = 678,
            ReasoningTokens = 90,
            AudioInputTokens = 11,
            AudioOutputTokens = 22,
            TotalTokens = 13023,
            CostUsd = 0.000012345678m,
            PriceId = "gpt-4o/priority/2024-08-06",
            CostSource = CostSource.Estimated,
            DurationMs = 1234.5,
            Status = UsageStatus.Estimated,
            HttpStatus = 200,
            Streaming = true,
            SessionId = "session-7",
            ProblemId = "problem-9",
            Tags = new Dictionary<string, string> { ["grade"] = "7", ["subject"] = "math", ["quote"] = "say \"hi\", ünïcödé" },
        };
        await Store.Usage.AppendAsync([original]);

        var back = Assert.Single(await ExportAsync(new UsageExportQuery()));

        Assert.Equal(original.Id, back.Id);
        Assert.Equal(original.CreatedAt, back.CreatedAt);
        Assert.Equal(original.UserId, back.UserId);
        Assert.Equal(original.Endpoint, back.Endpoint);
        Assert.Equal(original.Operation, back.Operation);
        Assert.Equal(original.RequestModel, back.RequestModel);
        Assert.Equal(original.Model, back.Model);
        Assert.Equal(original.ServiceTier, back.ServiceTier);
        Assert.Equal(original.InputTokens, back.InputTokens);
        Assert.Equal(original.CachedInputTokens, back.CachedInputTokens);
        Assert.Equal(original.CacheWriteTokens, back.CacheWriteTokens);
        Assert.Equal(original.OutputTokens, back.OutputTokens);
        Assert.Equal(original.ReasoningTokens, back.ReasoningTokens);
        Assert.Equal(original.AudioInputTokens, back.AudioInputTokens);
        Assert.Equal(original.AudioOutputTokens, back.AudioOutputTokens);
        Assert.Equal(original.TotalTokens, back.TotalTokens);
        Assert.Equal(original.CostUsd, back.CostUsd);
        Assert.Equal(original.PriceId, back.PriceId);
        Assert.Equal(original.CostSource, back.CostSource);
        Assert.Equal(original.DurationMs, back.DurationMs, 3);
        Assert.Equal(original.Status, back.Status);
        Assert.Equal(original.HttpStatus, back.HttpStatus);
        Assert.Equal(original.Streaming, back.Streaming);
        Assert.Equal(original.SessionId, back.SessionId);
        Assert.Equal(original.ProblemId, back.ProblemId);
        Assert.NotNull(back.Tags);
        Assert.Equal(original.Tags.OrderBy(t => t.Key, StringComparer.Ordinal), back.Tags.OrderBy(t => t.Key, StringComparer.Ordinal));
    }

    [Fact]
    public async Task Export_NullsRoundTrip()
    {
        var sparse = new UsageRecord { Id = Guid.CreateVersion7(Utc(2026, 3, 15)), CreatedAt = Utc(2026, 3, 15), Status = UsageStatus.TransportError };
        await Store.Usage.AppendAsync([sparse]);

        var back = Assert.Single(await ExportAsync(new UsageExportQuery()));

        Assert.Null(back.UserId);
        Assert.Null(back.Endpoint);
        Assert.Null(back.Model);
        Assert.Null(back.RequestModel);
        Assert.Null(back.ServiceTier);
        Assert.Null(back.CostUsd);
        Assert.Null(back.PriceId);
        Assert.Equal(CostSource.Unpriced, back.CostSource);
        Assert.Equal(0, back.CacheWriteTokens);
        Assert.Null(back.HttpStatus);
        Assert.Null(back.SessionId);
        Assert.Null(back.ProblemId);
        Assert.True(back.Tags is null || back.Tags.Count == 0);
        Assert.Equal(UsageOperation.Other, back.Operation);
        Assert.Equal(UsageStatus.TransportError, back.Status);
        Assert.Equal(0, back.TotalTokens);
    }

    // ---------------------------------------------------------------- append

    [Fact]
    public async Task Append_SameBatchTwice_CountsOnce()
    {
        var batch = PlatformRecords();

        Assert.Equal(10, await Store.Usage.AppendAsync(batch));
        Assert.Equal(0, await Store.Usage.AppendAsync(batch));

        var stats = await Store.Queries.GetStatsAsync(Today);
        Assert.Equal(10, stats.Figures.Calls);
        Assert.Equal(0.0745m, stats.Figures.CostUsd);
    }

    [Fact]
    public async Task Append_OverlappingBatch_StoresOnlyNewRecords()
    {
        var batch = PlatformRecords();
        await Store.Usage.AppendAsync(batch[..6]);

        Assert.Equal(4, await Store.Usage.AppendAsync(batch[3..]));
        Assert.Equal(0, await Store.Usage.AppendAsync([]));

        Assert.Equal(10, (await Store.Queries.GetStatsAsync(Today)).Figures.Calls);
        Assert.Equal(10, (await ExportAsync(new UsageExportQuery())).Count);
    }

    [Fact]
    public async Task Append_ConcurrentReplays_CountOnce()
    {
        var batch = Enumerable.Range(0, 200).Select(i => Call("u" + (i % 5), Utc(2026, 3, 15, 0).AddSeconds(i), "/api/chat", "gpt-4o", 1, 1, 0.01m)).ToArray();

        var added = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () => await Store.Usage.AppendAsync(batch))));

        Assert.Equal(200, added.Sum());
        var stats = await Store.Queries.GetStatsAsync(Today);
        Assert.Equal(200, stats.Figures.Calls);
        Assert.Equal(2.00m, stats.Figures.CostUsd);
    }

    [Fact]
    public async Task Append_NullCost_StaysNullAndCountsAsZero()
    {
        var unpriced = Call("erin", Utc(2026, 3, 15, 6), "/api/chat", "mystery-model", 100, 100, null);
        await Store.Usage.AppendAsync([unpriced]);

        Assert.Null(Assert.Single(await ExportAsync(new UsageExportQuery())).CostUsd);
        var summary = Assert.Single((await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery())).Items);
        Assert.Equal(0m, summary.Figures.CostUsd);
        Assert.Equal(200, summary.Figures.TotalTokens);
        Assert.Equal(0m, (await Store.Queries.GetStatsAsync(Today)).Today.Figures.CostUsd);
    }

    // ---------------------------------------------------------------- budgets

    [Fact]
    public async Task Budgets_Empty_NoDefaultNoUsersNoEffective()
    {
        var budgets = await Store.Budgets.GetBudgetsAsync();

        Assert.Null(budgets.Default);
        Assert.Empty(budgets.Users);
        Assert.Null(await Store.Budgets.GetEffectiveBudgetAsync("alice"));
    }

    [Fact]
    public async Task Budgets_DefaultOverrideNullLiftsDelete()
    {
        await Store.Budgets.SetDefaultBudgetAsync(new BudgetLimit(10.5m, null));
        await Store.Budgets.SetUserBudgetAsync(new UserBudget("bob", 20m, 1_000_000));
        await Store.Budgets.SetUserBudgetAsync(new UserBudget("alice", null, 5000));

        var budgets = await Store.Budgets.GetBudgetsAsync();
        Assert.Equal(new BudgetLimit(10.5m, null), budgets.Default);
        Assert.Equal([new UserBudget("alice", null, 5000), new UserBudget("bob", 20m, 1_000_000)], budgets.Users);

        // An override replaces the default entirely: alice's null cost limit lifts the default's.
        Assert.Equal(new BudgetLimit(null, 5000), await Store.Budgets.GetEffectiveBudgetAsync("alice"));
        Assert.Equal(new BudgetLimit(20m, 1_000_000), await Store.Budgets.GetEffectiveBudgetAsync("bob"));
        Assert.Equal(new BudgetLimit(10.5m, null), await Store.Budgets.GetEffectiveBudgetAsync("carol"));

        await Store.Budgets.SetUserBudgetAsync(new UserBudget("bob", 30m, null));
        Assert.Equal(new BudgetLimit(30m, null), await Store.Budgets.GetEffectiveBudgetAsync("bob"));

        Assert.True(await Store.Budgets.DeleteUserBudgetAsync("alice"));
        Assert.False(await Store.Budgets.DeleteUserBudgetAsync("alice"));
        Assert.Equal(new BudgetLimit(10.5m, null), await Store.Budgets.GetEffectiveBudgetAsync("alice"));

        await Store.Budgets.SetDefaultBudgetAsync(null);
        Assert.Null(await Store.Budgets.GetEffectiveBudgetAsync("alice"));
        Assert.Equal(new BudgetLimit(30m, null), await Store.Budgets.GetEffectiveBudgetAsync("bob"));
        var after = await Store.Budgets.GetBudgetsAsync();
        Assert.Null(after.Default);
        Assert.Equal([new UserBudget("bob", 30m, null)], after.Users);
    }

    [Fact]
    public async Task Budgets_OverrideWithNoLimits_LiftsTheDefault()
    {
        await Store.Budgets.SetDefaultBudgetAsync(new BudgetLimit(1m, 100));
        await Store.Budgets.SetUserBudgetAsync(new UserBudget("vip", null, null));

        var effective = await Store.Budgets.GetEffectiveBudgetAsync("vip");

        Assert.True(effective is null || !effective.HasLimit);
    }

    // ---------------------------------------------------------------- delivery log

    [Fact]
    public async Task Delivery_OneWinnerAmongConcurrentClaimers()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
            await Store.Deliveries.TryClaimAsync("report.daily", "2026-03-14", TimeSpan.FromMinutes(10)))));

        Assert.Equal(1, results.Count(won => won));
    }

    [Fact]
    public async Task Delivery_Completed_NeverReclaimed()
    {
        Assert.True(await Store.Deliveries.TryClaimAsync("statement.closed", "42/2026-02", TimeSpan.FromMinutes(5)));
        await Store.Deliveries.CompleteAsync("statement.closed", "42/2026-02");

        Time.Advance(TimeSpan.FromDays(2));

        Assert.False(await Store.Deliveries.TryClaimAsync("statement.closed", "42/2026-02", TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public async Task Delivery_ExpiredLease_Reclaimable_LiveLeaseNot()
    {
        Assert.True(await Store.Deliveries.TryClaimAsync("report.weekly", "2026-W11", TimeSpan.FromMinutes(10)));

        Time.Advance(TimeSpan.FromMinutes(9));
        Assert.False(await Store.Deliveries.TryClaimAsync("report.weekly", "2026-W11", TimeSpan.FromMinutes(10)));

        Time.Advance(TimeSpan.FromMinutes(2));
        Assert.True(await Store.Deliveries.TryClaimAsync("report.weekly", "2026-W11", TimeSpan.FromMinutes(10)));
        Assert.False(await Store.Deliveries.TryClaimAsync("report.weekly", "2026-W11", TimeSpan.FromMinutes(10)));
    }

    [Fact]
    public async Task Delivery_KindsAndKeysAreIndependent()
    {
        Assert.True(await Store.Deliveries.TryClaimAsync("report.daily", "2026-03-14", TimeSpan.FromMinutes(10)));
        Assert.True(await Store.Deliveries.TryClaimAsync("report.daily", "2026-03-15", TimeSpan.FromMinutes(10)));
        Assert.True(await Store.Deliveries.TryClaimAsync("alert.budget", "2026-03-14", TimeSpan.FromMinutes(10)));
    }

    [Fact]
    public async Task CacheWriteTokens_AddUpInEveryFigure()
    {
        await Store.Usage.AppendAsync(
        [
            Call("alice", Utc(2026, 3, 15, 8), "/api/chat", "gpt-5", 1000, 10, 0.01m) with { CacheWriteTokens = 300 },
            Call("alice", Utc(2026, 3, 15, 9), "/api/chat", "gpt-5", 2000, 10, 0.02m) with { CacheWriteTokens = 700 },
            Call(null, Utc(2026, 3, 14, 9), "/api/chat", "gpt-5", 500, 10, 0.01m) with { CacheWriteTokens = 50 },
        ]);

        Assert.Equal(1050, (await Store.Queries.GetStatsAsync(Today)).Figures.CacheWriteTokens);
        Assert.Equal(1000, Assert.Single((await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery())).Items).Figures.CacheWriteTokens);
        var detail = await Store.Queries.GetUserUsageAsync("alice", Today);
        Assert.Equal((1000L, 1000L), (detail!.Summary.Figures.CacheWriteTokens, detail.ThisMonth.CacheWriteTokens));
        Assert.Equal(1050, Assert.Single(await Store.Queries.GetEndpointUsageAsync()).Figures.CacheWriteTokens);
        Assert.Equal(1000, Assert.Single(await Store.Queries.GetUserEndpointUsageAsync(Today, Today)).Figures.CacheWriteTokens);
        Assert.Equal([1000L, 50L], (await Store.Queries.GetDailyUsageAsync(Today.AddDays(-1), Today)).Select(d => d.Figures.CacheWriteTokens));
        Assert.Equal(1050, Assert.Single(await Store.Queries.GetMonthlyUsageAsync(Today, Today)).Figures.CacheWriteTokens);
        Assert.Equal(1000, Assert.Single(await Store.Queries.GetUserDailyUsageAsync(Today, Today)).Figures.CacheWriteTokens);
        Assert.Equal(1000, (await Store.Queries.GetUserTotalsAsync("alice", Today, Today)).CacheWriteTokens);
        await AssertViewsAgreeWithRecordsAsync(await ExportAsync(new UsageExportQuery()));
    }

    [Fact]
    public async Task UserUsage_ThisMonthByCostSource_CountsAndCostsOfTheMonthsRecords()
    {
        await Store.Usage.AppendAsync(
        [
            Call("erin", Utc(2026, 3, 2), "/api/chat", "gpt-4o", 100, 10, 0.01m),
            Call("erin", Utc(2026, 3, 3), "/api/chat", "gpt-4o", 100, 10, 0.02m) with { CostSource = CostSource.Estimated, Status = UsageStatus.Estimated },
            Call("erin", Utc(2026, 3, 4), "/api/chat", "gpt-4o", 100, 10, 0.04m) with { CostSource = CostSource.Reported },
            Call("erin", Utc(2026, 3, 5), "/api/chat", "house-model", 100, 10, null),

            // Before cost sources existed a record said nothing (Unpriced): derived from its cost and status.
            Call("erin", Utc(2026, 3, 6), "/api/chat", "gpt-4o", 100, 10, 0.08m) with { CostSource = CostSource.Unpriced, Status = UsageStatus.Estimated },
            Call("erin", Utc(2026, 2, 28, 23, 59, 59), "/api/chat", "gpt-4o", 100, 10, 0.16m),
        ]);

        var detail = await Store.Queries.GetUserUsageAsync("erin", Today);

        Assert.Equal(
            [new CostSourceUsage(CostSource.Reported, 2, 0.05m), new CostSourceUsage(CostSource.Estimated, 2, 0.10m), new CostSourceUsage(CostSource.Unpriced, 1, 0m)],
            detail!.ThisMonthByCostSource);
        Assert.Equal(detail.ThisMonth.Calls, detail.ThisMonthByCostSource.Sum(u => u.Calls));
        Assert.Equal(detail.ThisMonth.CostUsd, detail.ThisMonthByCostSource.Sum(u => u.CostUsd));
    }

    // ---------------------------------------------------------------- re-pricing

    /// <summary>The prices a re-pricing applies: the defaults, gpt-4o dearer from 2026-03-01, and a price for house-model.</summary>
    private static readonly PriceTable NewPrices = PriceTable.Default.With(
    [
        new ModelPrice("gpt-4o", PriceTier.Standard, new DateOnly(2026, 3, 1), 3.00m, 1.50m, 12.00m),
        new ModelPrice("house-model", PriceTier.Standard, new DateOnly(2026, 1, 1), 1.00m, null, 2.00m),
    ]);

    private RepricingPlan Plan(DateOnly from, DateOnly to, bool onlyUnpriced, bool dryRun) => new(
        new RepricingRequest(from, to, onlyUnpriced, dryRun) { By = "admin" },
        Guid.CreateVersion7(Time.GetUtcNow()),
        Time.GetUtcNow(),
        new DateOnly(2026, 3, 1),
        record => RecordPricing.Price(NewPrices, record));

    [Fact]
    public async Task Reprice_DryRunThenApply_SameTotals_ClosedMonthUntouched_QueriesAgreeWithRecords()
    {
        var repricing = Store.Repricing ?? throw new InvalidOperationException("The store under test has no re-pricing.");
        await SeedPlatformAsync();
        var februaryBefore = (await Store.Queries.GetMonthlyUsageAsync(new DateOnly(2026, 2, 1), new DateOnly(2026, 2, 1))).Single();
        var from = new DateOnly(2026, 2, 1);
        var to = new DateOnly(2026, 3, 31);

        var dry = await repricing.RepriceAsync(Plan(from, to, onlyUnpriced: false, dryRun: true));
        var unchanged = await ExportAsync(new UsageExportQuery());
        var applied = await repricing.RepriceAsync(Plan(from, to, onlyUnpriced: false, dryRun: false));

        // March: six records, written out from the list prices (gpt-4o now 3.00 / 1.50 / 12.00).
        Assert.True(dry.DryRun);
        Assert.Null(dry.Id);
        Assert.Equal(6, dry.Records);
        Assert.Equal(0.0645m, dry.OldCostUsd);
        Assert.Equal(0.0087m + 0.000045m + 0.018m + 0.000105m + 0.017m + 0.000042m, dry.NewCostUsd);
        Assert.Equal(PlatformRecords().Select(r => r.CostUsd).Order(), unchanged.Select(r => r.CostUsd).Order());
        Assert.False(applied.DryRun);
        Assert.NotNull(applied.Id);
        Assert.Equal((dry.Records, dry.OldCostUsd, dry.NewCostUsd), (applied.Records, applied.OldCostUsd, applied.NewCostUsd));
        Assert.Equal(dry.ByModel, applied.ByModel);
        Assert.Equal(3, applied.ByModel.Count);
        Assert.Equal(new RepricingModelTotals("o3", 1, 0.030m, 0.017m), applied.ByModel.Single(m => m.Model == "o3"));

        // February's statement is closed: reported (one unpriced record priced, one cheaper), not changed.
        var february = Assert.Single(applied.ClosedMonths);
        Assert.Equal((new DateOnly(2026, 2, 1), 2L, 0.0000375m - 0.0009375m), (february.Month, february.Records, february.DifferenceUsd));
        Assert.Equal(februaryBefore, (await Store.Queries.GetMonthlyUsageAsync(new DateOnly(2026, 2, 1), new DateOnly(2026, 2, 1))).Single());
        var records = await ExportAsync(new UsageExportQuery());
        Assert.Null(records.Single(r => r.UserId == "bob" && r.CreatedAt.Month == 2).CostUsd);
        var march = records.Single(r => r.UserId == "alice" && r.Endpoint == "/api/analyze" && r.CreatedAt.Month == 3);
        Assert.Equal(0.0087m, march.CostUsd);
        Assert.Equal("gpt-4o/standard/2026-03-01", march.PriceId);
        Assert.Equal(CostSource.Reported, march.CostSource);
        await AssertQueriesAgreeWithRecordsAsync();

        // Applying again changes nothing; both applied re-pricings are listed, newest first.
        Time.Advance(TimeSpan.FromMinutes(1));
        var again = await repricing.RepriceAsync(Plan(from, to, onlyUnpriced: false, dryRun: false));
        Assert.Equal((0L, 0m, 0m), (again.Records, again.OldCostUsd, again.NewCostUsd));
        Assert.Equal(records.Select(r => (r.Id, r.CostUsd, r.PriceId)), (await ExportAsync(new UsageExportQuery())).Select(r => (r.Id, r.CostUsd, r.PriceId)));
        var listed = await repricing.GetRepricingsAsync();
        Assert.Equal([again.Id!.Value, applied.Id!.Value], listed.Select(e => e.Id));
        Assert.Equal(("admin", from, to, false, 6L, 0.0645m, dry.NewCostUsd), (listed[1].By, listed[1].From, listed[1].To, listed[1].OnlyUnpriced, listed[1].Records, listed[1].OldCostUsd, listed[1].NewCostUsd));
    }

    [Fact]
    public async Task Reprice_OnlyUnpriced_PricesJustTheRecordsWithoutCost()
    {
        var repricing = Store.Repricing ?? throw new InvalidOperationException("The store under test has no re-pricing.");
        await SeedPlatformAsync();
        await Store.Usage.AppendAsync([Call("erin", Utc(2026, 3, 10), "/api/chat", "house-model", 1000, 1000, null)]);

        var result = await repricing.RepriceAsync(Plan(new DateOnly(2026, 3, 1), new DateOnly(2026, 3, 31), onlyUnpriced: true, dryRun: false));

        Assert.Equal((1L, 0m, 0.003m), (result.Records, result.OldCostUsd, result.NewCostUsd));
        var erin = (await ExportAsync(new UsageExportQuery(UserId: "erin"))).Single();
        Assert.Equal((0.003m, "house-model/standard/2026-01-01", CostSource.Reported), (erin.CostUsd, erin.PriceId, erin.CostSource));
        Assert.Equal(0.010m, (await ExportAsync(new UsageExportQuery(UserId: "alice"))).Single(r => r.CreatedAt.Day == 15 && r.Model == "gpt-4o").CostUsd);
        await AssertQueriesAgreeWithRecordsAsync();
    }

    [Fact]
    public async Task UserUsage_ByEndpoint_EqualsAFreshSumOverRecords_AfterIngestSpoolReplayAndReprice()
    {
        var repricing = Store.Repricing ?? throw new InvalidOperationException("The store under test has no re-pricing.");
        var records = PlatformRecords();

        // More history for the same users and pairs (other months), a null endpoint and model, and an unpriced call.
        UsageRecord[] history =
        [
            Call("alice", Utc(2025, 11, 3, 9), "/api/analyze", "gpt-4o", 40, 20, 0.0003m, cached: 10),
            Call("alice", Utc(2026, 2, 3, 9), null, null, 7, 3, null),
            Call("alice", Utc(2026, 3, 3, 9), null, null, 7, 3, 0.0001m),
            Call("bob", Utc(2026, 3, 10, 9), "/api/analyze", "house-model", 100, 100, null),
            Call("bob", Utc(2026, 3, 11, 9), "/api/analyze", "gpt-4o", 300, 100, 0.002m, reasoning: 50),
        ];
        Assert.Equal(records.Length, await Store.Usage.AppendAsync(records));
        await AssertByEndpointAgreesWithRecordsAsync();

        // A spool replay: a batch resent after a lost acknowledgement, overlapping new records; then all of it again.
        Assert.Equal(history.Length, await Store.Usage.AppendAsync([.. records[..5], .. history]));
        Assert.Equal(0, await Store.Usage.AppendAsync([.. history, .. records]));
        await AssertByEndpointAgreesWithRecordsAsync();

        var result = await repricing.RepriceAsync(Plan(new DateOnly(2025, 11, 1), new DateOnly(2026, 3, 31), onlyUnpriced: false, dryRun: false));
        Assert.True(result.Records > 0);
        await AssertByEndpointAgreesWithRecordsAsync();
        await AssertQueriesAgreeWithRecordsAsync();
    }

    /// <summary>Each user's by-endpoint list equals a fresh group-by over the stored records: same pairs, same figures, costliest first.</summary>
    protected async Task AssertByEndpointAgreesWithRecordsAsync()
    {
        var records = await ExportAsync(new UsageExportQuery());
        foreach (var user in records.Where(r => r.UserId is not null).GroupBy(r => r.UserId!, StringComparer.Ordinal))
        {
            var expected = user
                .GroupBy(r => (r.Endpoint, r.Model))
                .Select(g => new UserEndpointUsage(user.Key, g.Key.Endpoint, g.Key.Model, UsageFigures.Of(g)))
                .OrderByDescending(e => e.Figures.CostUsd)
                .ThenBy(e => e.Endpoint, StringComparer.Ordinal)
                .ThenBy(e => e.Model, StringComparer.Ordinal)
                .ToList();
            var detail = await Store.Queries.GetUserUsageAsync(user.Key, Today);
            Assert.Equal(expected, detail!.ByEndpoint);
        }
    }

    /// <summary>
    /// Checks the store's own reporting objects (PostgreSQL: the four summary views) against the
    /// stored records: calls, cache-write tokens and cost per user, endpoint and model, day and
    /// month. Nothing to check by default.
    /// </summary>
    /// <param name="records">Every stored record.</param>
    /// <returns>A task.</returns>
    protected virtual Task AssertViewsAgreeWithRecordsAsync(IReadOnlyList<UsageRecord> records) => Task.CompletedTask;

    /// <summary>Every query's cost (and the store's views) equals a fresh sum over the stored records.</summary>
    protected async Task AssertQueriesAgreeWithRecordsAsync()
    {
        var records = await ExportAsync(new UsageExportQuery());
        await AssertViewsAgreeWithRecordsAsync(records);
        static decimal Sum(IEnumerable<UsageRecord> rs) => rs.Sum(r => r.CostUsd ?? 0m);
        static DateOnly DayOf(UsageRecord r) => DateOnly.FromDateTime(r.CreatedAt.UtcDateTime);
        var first = new DateOnly(2025, 1, 1);
        var last = new DateOnly(2026, 12, 31);

        var stats = await Store.Queries.GetStatsAsync(Today);
        Assert.Equal(Sum(records), stats.Figures.CostUsd);
        Assert.Equal(Sum(records.Where(r => DayOf(r) == Today)), stats.Today.Figures.CostUsd);
        Assert.Equal(Sum(records.Where(r => DayOf(r).Year == Today.Year && DayOf(r).Month == Today.Month)), stats.ThisMonth.Figures.CostUsd);

        var users = records.Where(r => r.UserId is not null).GroupBy(r => r.UserId!, StringComparer.Ordinal).ToList();
        var page = await Store.Queries.GetUserSummariesAsync(new UserSummaryQuery(Limit: 500));
        Assert.Equal(users.Count, page.Items.Count);
        foreach (var user in users)
        {
            Assert.Equal(Sum(user), page.Items.Single(i => i.UserId == user.Key).Figures.CostUsd);
            var detail = await Store.Queries.GetUserUsageAsync(user.Key, Today);
            Assert.Equal(Sum(user), detail!.Summary.Figures.CostUsd);
            Assert.Equal(Sum(user.Where(r => DayOf(r).Month == Today.Month && DayOf(r).Year == Today.Year)), detail.ThisMonth.CostUsd);
            Assert.Equal(Sum(user), detail.ByEndpoint.Sum(e => e.Figures.CostUsd));
            Assert.Equal(Sum(user), (await Store.Queries.GetUserTotalsAsync(user.Key, first, last)).CostUsd);
        }

        foreach (var endpoint in await Store.Queries.GetEndpointUsageAsync())
        {
            Assert.Equal(Sum(records.Where(r => r.Endpoint == endpoint.Endpoint && r.Model == endpoint.Model)), endpoint.Figures.CostUsd);
        }

        foreach (var row in await Store.Queries.GetUserEndpointUsageAsync(first, last))
        {
            Assert.Equal(Sum(records.Where(r => r.UserId == row.UserId && r.Endpoint == row.Endpoint && r.Model == row.Model)), row.Figures.CostUsd);
        }

        foreach (var day in await Store.Queries.GetDailyUsageAsync(first, last))
        {
            Assert.Equal(Sum(records.Where(r => DayOf(r) == day.Period)), day.Figures.CostUsd);
        }

        foreach (var month in await Store.Queries.GetMonthlyUsageAsync(first, last))
        {
            Assert.Equal(Sum(records.Where(r => DayOf(r).Year == month.Period.Year && DayOf(r).Month == month.Period.Month)), month.Figures.CostUsd);
        }

        foreach (var row in await Store.Queries.GetUserDailyUsageAsync(first, last))
        {
            Assert.Equal(Sum(records.Where(r => r.UserId == row.UserId && DayOf(r) == row.Date)), row.Figures.CostUsd);
        }
    }
}
