using TokenMeter.Forecasting;

namespace TokenMeter.Tests.Forecasting;

public sealed class CostProjectionTests
{
    // November 2026 has 30 days; the 1st is a Sunday.
    private static readonly DateOnly MonthStart = new(2026, 11, 1);

    private static Dictionary<DateOnly, decimal> Series(DateOnly from, DateOnly toExclusive, Func<DateOnly, decimal> cost)
    {
        var series = new Dictionary<DateOnly, decimal>();
        for (var d = from; d < toExclusive; d = d.AddDays(1))
        {
            series[d] = cost(d);
        }

        return series;
    }

    private static DateTimeOffset StartOf(DateOnly day) => new(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

    [Fact]
    public void Project_FlatSeries_ProjectsFlat()
    {
        var asOf = MonthStart.AddDays(14); // days 1..14 complete
        var series = Series(asOf.AddDays(-40), asOf, _ => 10m);

        var result = CostProjection.Project(series, asOf.AddDays(-40), StartOf(asOf));

        Assert.Equal(140m, result.MonthToDate);
        Assert.Equal(300m, result.Projected);
        Assert.True(result.Low <= 300m && result.High >= 300m);
        Assert.True(result.High - result.Low < 60m, $"interval {result.Low}..{result.High} is too wide for a flat series");
        Assert.Contains("weekday/weekend", result.Method, StringComparison.Ordinal);
    }

    [Fact]
    public void Project_WeekdayOnlySeries_ProjectsWeekdaysOnly()
    {
        var asOf = MonthStart.AddDays(11); // the 12th, a Thursday
        var series = Series(asOf.AddDays(-35), asOf, d => CostProjection.IsWeekend(d) ? 0m : 20m);

        var result = CostProjection.Project(series, asOf.AddDays(-35), StartOf(asOf));

        var remainingWeekdays = Enumerable.Range(0, 30 - 11).Select(asOf.AddDays).Count(d => !CostProjection.IsWeekend(d));
        var mtdWeekdays = Enumerable.Range(0, 11).Select(MonthStart.AddDays).Count(d => !CostProjection.IsWeekend(d));
        Assert.Equal(mtdWeekdays * 20m, result.MonthToDate);
        Assert.Equal((mtdWeekdays + remainingWeekdays) * 20m, result.Projected);
        Assert.All(result.Path.Where(p => CostProjection.IsWeekend(p.Day)), p => Assert.Equal(0m, p.ExpectedCostUsd));
        Assert.All(result.Path.Where(p => !CostProjection.IsWeekend(p.Day)), p => Assert.Equal(20m, p.ExpectedCostUsd));
    }

    [Fact]
    public void Project_WeekendsCheaper_UsesEachKindsRate()
    {
        var asOf = MonthStart.AddDays(20);
        var series = Series(asOf.AddDays(-30), asOf, d => CostProjection.IsWeekend(d) ? 4m : 12m);

        var result = CostProjection.Project(series, asOf.AddDays(-30), StartOf(asOf));

        var expected = Enumerable.Range(0, 30).Select(MonthStart.AddDays).Sum(d => CostProjection.IsWeekend(d) ? 4m : 12m);
        Assert.Equal(expected, result.Projected);
    }

    [Fact]
    public void Project_OneSpike_DoesNotSetTheRate()
    {
        var asOf = MonthStart.AddDays(15);
        var spikeDay = asOf.AddDays(-3);
        var series = Series(asOf.AddDays(-40), asOf, d => d == spikeDay ? 200m : 10m);

        var result = CostProjection.Project(series, asOf.AddDays(-40), StartOf(asOf));

        // The spike is in month to date, but the remaining 15 days go at the usual 10 a day.
        Assert.Equal(result.MonthToDate + 150m, result.Projected);
    }

    [Fact]
    public void Project_ShortHistory_SaysSoAndWidensTheInterval()
    {
        var asOf = MonthStart.AddDays(10);
        var noisy = new[] { 8m, 12m, 9m, 11m, 10m, 10m, 8m, 12m, 9m, 11m, 10m, 10m, 8m, 12m };
        var shortSeries = Series(asOf.AddDays(-4), asOf, d => noisy[asOf.DayNumber - d.DayNumber]);
        var longSeries = Series(asOf.AddDays(-14), asOf, d => noisy[asOf.DayNumber - d.DayNumber - 1]);

        var shortResult = CostProjection.Project(shortSeries, asOf.AddDays(-4), StartOf(asOf));
        var longResult = CostProjection.Project(longSeries, asOf.AddDays(-14), StartOf(asOf));

        Assert.Contains("fewer than 7 days of history", shortResult.Method, StringComparison.Ordinal);
        Assert.Equal(4, shortResult.HistoryDays);
        Assert.DoesNotContain("fewer than", longResult.Method, StringComparison.Ordinal);
        var shortRemainingWidth = shortResult.High - shortResult.Low;
        var longRemainingWidth = longResult.High - longResult.Low;
        Assert.True(shortRemainingWidth > 1.5m * longRemainingWidth, $"short {shortRemainingWidth} vs long {longRemainingWidth}");
    }

    [Fact]
    public void Project_MidDay_CountsOnlyTheRestOfToday()
    {
        var today = MonthStart.AddDays(9);
        var series = Series(today.AddDays(-20), today, _ => 10m);
        series[today] = 6m;

        var result = CostProjection.Project(series, today.AddDays(-20), StartOf(today).AddHours(12));

        Assert.Equal(96m, result.MonthToDate);
        Assert.Equal(5m, result.Path[0].ExpectedCostUsd);
        Assert.Equal(96m + 5m + (20 * 10m), result.Projected);
    }

    [Fact]
    public void Project_NoUsage_ProjectsZero()
    {
        var result = CostProjection.Project(new Dictionary<DateOnly, decimal>(), null, StartOf(MonthStart.AddDays(5)));

        Assert.Equal(0m, result.Projected);
        Assert.Equal(0m, result.Low);
        Assert.Equal(0m, result.High);
        Assert.Equal(0, result.HistoryDays);
    }

    [Fact]
    public void Project_FirstDayOnly_ExtrapolatesTodayAndWidens()
    {
        var today = MonthStart.AddDays(9);
        var series = new Dictionary<DateOnly, decimal> { [today] = 5m };

        var result = CostProjection.Project(series, today, StartOf(today).AddHours(12));

        Assert.Contains("no complete day", result.Method, StringComparison.Ordinal);
        Assert.Equal(5m + 5m + (20 * 10m), result.Projected);
        Assert.True(result.High > result.Projected && result.Low < result.Projected);
    }

    [Fact]
    public void Project_GrowingSeries_ProjectsAboveTheFlatRate()
    {
        var asOf = MonthStart.AddDays(20);
        var start = asOf.AddDays(-50);
        var series = Series(start, asOf, d => 10m * (decimal)Math.Exp(0.02 * (d.DayNumber - start.DayNumber)));

        var trend = CostProjection.Project(series, start, StartOf(asOf));
        var flat = CostProjection.Project(series, start, StartOf(asOf), ProjectionSettings.Default with { UseTrend = false });

        Assert.Contains("growth", trend.Method, StringComparison.Ordinal);
        Assert.True(trend.Projected > flat.Projected);

        var truth = Enumerable.Range(0, 30).Select(MonthStart.AddDays).Sum(d => 10m * (decimal)Math.Exp(0.02 * (d.DayNumber - start.DayNumber)));
        Assert.True(Math.Abs(trend.Projected - truth) < Math.Abs(flat.Projected - truth));
    }

    [Fact]
    public void Project_LowEnd_NeverBelowMonthToDate()
    {
        var asOf = MonthStart.AddDays(3);
        var series = Series(asOf.AddDays(-10), asOf, d => d.Day % 2 == 0 ? 0m : 50m);

        var result = CostProjection.Project(series, asOf.AddDays(-10), StartOf(asOf));

        Assert.True(result.Low >= result.MonthToDate);
    }
}
