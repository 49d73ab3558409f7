using TokenMeter.Forecasting;

namespace TokenMeter.Tests.Forecasting;

public sealed class ExhaustionDateTests
{
    private static readonly DateOnly MonthStart = new(2026, 11, 1);

    [Fact]
    public void ExhaustionDate_BudgetAhead_IsTheProjectedDay()
    {
        var today = MonthStart.AddDays(10); // 11th; days 1..10 cost 10 each
        var series = new Dictionary<DateOnly, decimal>();
        for (var d = today.AddDays(-30); d < today; d = d.AddDays(1))
        {
            series[d] = 10m;
        }

        var projection = CostProjection.Project(series, today.AddDays(-30), new DateTimeOffset(today.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero));

        // 100 so far; 10 a day more: 150 is reached at the end of the 15th.
        Assert.Equal(new DateOnly(2026, 11, 15), UsageForecaster.ExhaustionDate(projection, series, 150m, today));
        Assert.Equal(new DateOnly(2026, 11, 5), UsageForecaster.ExhaustionDate(projection, series, 50m, today));
        Assert.Null(UsageForecaster.ExhaustionDate(projection, series, 1000m, today));
    }
}
