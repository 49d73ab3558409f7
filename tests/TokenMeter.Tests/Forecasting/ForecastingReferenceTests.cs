using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Querying;

namespace TokenMeter.Tests.Forecasting;

/// <summary>
/// The projection and the users' forecasts against the reference (ReferenceForecast.cs: the code as it was before its
/// per-user work was cut down) over many random histories: every figure the same to the bit, decimals with their scale.
/// </summary>
public sealed class ForecastingReferenceTests
{
    private static readonly ProjectionSettings[] Settings =
    [
        ProjectionSettings.Default,
        ProjectionSettings.Default with { UseTrend = false },
        ProjectionSettings.Default with { WindowDays = 7, MinimumHistoryDays = 3 },
        ProjectionSettings.Default with { WindowDays = 14, TrendDamping = 1.0 },
        ProjectionSettings.Default with { WindowDays = 2, MinimumHistoryDays = 1 },
        ProjectionSettings.Default with { WindowDays = 1, MinimumHistoryDays = 1 },
        ProjectionSettings.Default with { WindowDays = 70 }, // more days than a median sorts by insertion
        ProjectionSettings.Default with { WindowDays = 140, MinimumHistoryDays = 30 }, // more than it sorts on the stack
    ];

    [Fact]
    public void Project_RandomHistories_EqualsTheReferenceToTheBit()
    {
        var random = new Random(20261203);
        for (var run = 0; run < 4000; run++)
        {
            var (series, firstDay, asOf) = History(random);
            var settings = Settings[random.Next(Settings.Length)];
            var today = DateOnly.FromDateTime(asOf.UtcDateTime);
            var want = ReferenceCostProjection.Project(series, firstDay, asOf, settings);

            // As a dictionary (the platform's forecast) and as the users' forecasts hold it.
            var daily = new DailyCosts(today.AddDays(-400), today);
            foreach (var (day, cost) in series)
            {
                daily.Add(day, cost);
            }

            foreach (var input in new IReadOnlyDictionary<DateOnly, decimal>[] { series, daily })
            {
                var got = CostProjection.Project(input, firstDay, asOf, settings);
                var context = $"run {run}, {input.GetType().Name}, as of {asOf:O}, first day {firstDay}, window {settings.WindowDays}";
                AssertSame(want, got, context);
                foreach (var budget in new[] { 0m, 0.01m, want.MonthToDate, want.Projected, want.High, want.High + 1m, random.Next(0, 100_000) / 100m })
                {
                    Assert.True(
                        ReferenceForecast.ExhaustionDate(want, series, budget, today) == UsageForecaster.ExhaustionDate(got, input, budget, today),
                        $"{context}, budget {budget}: exhaustion date differs");
                }
            }
        }
    }

    [Fact]
    public void ForecastUsers_RandomUsers_EqualTheReferenceToTheBit()
    {
        var random = new Random(31);
        for (var run = 0; run < 40; run++)
        {
            var now = new DateTimeOffset(2026, 1 + random.Next(12), 1, 0, 0, 0, TimeSpan.Zero).AddDays(random.Next(31)).AddMinutes(random.Next(24 * 60));
            var today = DateOnly.FromDateTime(now.UtcDateTime);
            var monthStart = new DateOnly(today.Year, today.Month, 1);
            var historyStart = today.AddDays(-49) < monthStart ? today.AddDays(-49) : monthStart;

            // Users with a row a day (some days with two, some rows outside the range read, some without calls), in
            // user-id order or shuffled; budgets from the default, an override, or none.
            var rows = new List<UserDailyUsage>();
            var overrides = new List<UserBudget>();
            for (var u = 0; u < 60; u++)
            {
                var userId = "user-" + u.ToString("D3", System.Globalization.CultureInfo.InvariantCulture);
                var (series, _, _) = History(random, now);
                foreach (var (day, cost) in series.OrderBy(p => p.Key))
                {
                    var calls = random.Next(8) == 0 ? 0 : random.Next(1, 40);
                    rows.Add(new UserDailyUsage(userId, day, new UsageFigures(calls, 0, 0, 0, 0, 0, cost)));
                    if (random.Next(15) == 0)
                    {
                        rows.Add(new UserDailyUsage(userId, day, new UsageFigures(1, 0, 0, 0, 0, 0, Cost(random))));
                    }
                }

                if (random.Next(4) == 0)
                {
                    overrides.Add(new UserBudget(userId, random.Next(3) == 0 ? null : random.Next(0, 20_000) / 100m, null));
                }
            }

            if (run % 4 == 3)
            {
                rows = [.. rows.OrderBy(_ => random.Next())];
            }

            var budgets = new BudgetSettings(run % 5 == 4 ? null : new BudgetLimit(random.Next(0, 10_000) / 100m, null), overrides);
            var want = ReferenceForecast.ForecastAllUsers(rows, budgets, historyStart, now);
            var got = UsageForecaster.ForecastUsers(rows, budgets, historyStart, now);

            Assert.Equal(want.Count, got.Count);
            for (var i = 0; i < want.Count; i++)
            {
                var context = $"run {run}, user {want[i].UserId}";
                Assert.Equal(want[i].UserId, got[i].UserId);
                AssertSame(want[i].MonthToDateCostUsd, got[i].MonthToDateCostUsd, context + ", month to date");
                AssertSame(want[i].ProjectedMonthCostUsd, got[i].ProjectedMonthCostUsd, context + ", projected");
                AssertSame(want[i].MonthlyCostUsd, got[i].MonthlyCostUsd, context + ", budget");
                Assert.True(want[i].ProjectedExhaustionDate == got[i].ProjectedExhaustionDate, context + ": exhaustion date differs");
            }
        }
    }

    [Fact]
    public void MedianDistance_SortedValues_IsTheMedianOfTheSortedDistances()
    {
        var random = new Random(17);
        for (var run = 0; run < 20_000; run++)
        {
            // Few distinct values (ties, zeros, both signs of zero) as well as spread ones.
            var count = 1 + random.Next(run % 10 == 0 ? 200 : 30);
            var values = Enumerable.Range(0, count).Select(_ => random.Next(6) switch
            {
                0 => 0.0,
                1 => -0.0,
                2 => random.Next(-3, 4) / 3.0,
                _ => random.NextDouble() * Math.Pow(10, random.Next(-6, 6)),
            }).Order().ToArray();
            var median = CostProjection.Median(values);

            var want = CostProjection.Median(values.Select(v => Math.Abs(v - median)).ToArray());
            var got = CostProjection.MedianDistance(values, median);
            Assert.True(BitConverter.DoubleToInt64Bits(want) == BitConverter.DoubleToInt64Bits(got), $"run {run}: {want:R} vs {got:R}");
        }
    }

    [Fact]
    public void DailyCosts_EachDaysCost_IsTheSumFromZeroOfItsCosts_ToTheBit()
    {
        var random = new Random(23);
        var first = new DateOnly(2026, 10, 6);
        var costs = new DailyCosts(first, first.AddDays(30));
        for (var run = 0; run < 200; run++)
        {
            costs.Clear();
            var reference = new Dictionary<DateOnly, decimal>();
            for (var i = 0; i < 40; i++)
            {
                var day = first.AddDays(random.Next(-2, 33));
                var cost = Cost(random);
                if (costs.Add(day, cost))
                {
                    reference[day] = reference.GetValueOrDefault(day) + cost;
                }
            }

            for (var day = first.AddDays(-3); day <= first.AddDays(33); day = day.AddDays(1))
            {
                Assert.Equal(reference.ContainsKey(day), costs.ContainsKey(day));
                AssertSame(reference.GetValueOrDefault(day), costs.CostOrZero(day), $"run {run}, {day}");
            }
        }
    }

    /// <summary>A random day cost: mostly positive with up to 12 decimals, sometimes zero, -0 (both scales) or negative.</summary>
    private static decimal Cost(Random random) => random.Next(40) switch
    {
        0 => 0m,
        1 => decimal.Negate(0m),
        2 => decimal.Negate(0.000m),
        3 => -random.Next(1, 1_000_000) / 1_000_000m,
        4 => 0.10m,
        _ => new decimal(random.Next(), random.Next(3) == 0 ? random.Next(1, 1000) : 0, 0, false, (byte)random.Next(2, 13)),
    };

    /// <summary>A random history: as of a random moment, from a random first day (or none), dense or sparse, flat, spiky or growing.</summary>
    private static (Dictionary<DateOnly, decimal> Series, DateOnly? FirstDay, DateTimeOffset AsOf) History(Random random, DateTimeOffset? at = null)
    {
        var asOf = at ?? new DateTimeOffset(2026, 1 + random.Next(12), 1, 0, 0, 0, TimeSpan.Zero)
            .AddDays(random.Next(31))
            .AddTicks(random.Next(5) == 0 ? 0 : (long)(random.NextDouble() * TimeSpan.TicksPerDay));
        var today = DateOnly.FromDateTime(asOf.UtcDateTime);
        var series = new Dictionary<DateOnly, decimal>();
        var historyLength = random.Next(6) switch
        {
            0 => -1, // no usage
            1 => 0, // today only
            2 => random.Next(1, 8),
            _ => random.Next(8, 200),
        };
        if (historyLength < 0)
        {
            return (series, null, asOf);
        }

        var first = today.AddDays(-historyLength);
        var density = random.Next(3) == 0 ? random.NextDouble() : 1.0;
        var growth = random.Next(3) == 0 ? (random.NextDouble() - 0.4) * 0.1 : 0;
        var weekendShare = random.Next(3) == 0 ? 0m : random.Next(2, 11) / 10m;
        var level = new decimal(random.Next(1, 100_000)) / (decimal)Math.Pow(10, random.Next(0, 7));
        var constant = random.Next(5) == 0;
        for (var d = first; d <= today; d = d.AddDays(1))
        {
            if (d != first && random.NextDouble() > density)
            {
                continue;
            }

            var cost = constant
                ? level
                : Math.Round(level * (decimal)Math.Exp(growth * (d.DayNumber - first.DayNumber)) * (CostProjection.IsWeekend(d) ? weekendShare : 1m) * random.Next(50, 150) / 100m, random.Next(2, 15));
            series[d] = random.Next(30) == 0 ? Cost(random) : random.Next(50) == 0 ? cost * 20 : cost;
        }

        return (series, random.Next(10) == 0 ? first.AddDays(-random.Next(1, 5)) : first, asOf);
    }

    private static void AssertSame(CostProjectionResult want, CostProjectionResult got, string context)
    {
        Assert.Equal(want.Month, got.Month);
        AssertSame(want.MonthToDate, got.MonthToDate, context + ", month to date");
        AssertSame(want.Projected, got.Projected, context + ", projected");
        AssertSame(want.Low, got.Low, context + ", low");
        AssertSame(want.High, got.High, context + ", high");
        Assert.Equal(want.Method, got.Method);
        Assert.Equal(want.HistoryDays, got.HistoryDays);
        Assert.Equal(want.Path.Count, got.Path.Count);
        for (var i = 0; i < want.Path.Count; i++)
        {
            Assert.Equal(want.Path[i].Day, got.Path[i].Day);
            AssertSame(want.Path[i].ExpectedCostUsd, got.Path[i].ExpectedCostUsd, $"{context}, path day {i}");
        }
    }

    private static void AssertSame(decimal want, decimal got, string context) =>
        Assert.True(decimal.GetBits(want).SequenceEqual(decimal.GetBits(got)), $"{context}: {want} vs {got} (bits {string.Join(',', decimal.GetBits(want))} vs {string.Join(',', decimal.GetBits(got))})");
}
