using TokenMeter.Forecasting;

namespace TokenMeter.Tests.Forecasting;

public sealed class DailyCostsTests
{
    private static readonly DateOnly First = new(2026, 10, 6);
    private static readonly DateOnly Last = new(2026, 11, 24);

    [Fact]
    public void DailyCosts_AnswersAsADictionaryOfTheDaysAdded_AndKeepsNoDayOutsideItsRange()
    {
        var costs = new DailyCosts(First, Last);
        var reference = new Dictionary<DateOnly, decimal>();
        var random = new Random(9);
        for (var i = 0; i < 200; i++)
        {
            var day = First.AddDays(random.Next(-5, 56));
            var cost = random.Next(0, 10_000) / 1_000_000m;
            var inRange = day >= First && day <= Last;
            Assert.Equal(inRange, costs.Add(day, cost));
            if (inRange)
            {
                reference[day] = reference.GetValueOrDefault(day) + cost;
            }
        }

        Assert.Equal(reference.Count, costs.Count);
        Assert.Equal(reference.OrderBy(p => p.Key), costs);
        for (var day = First.AddDays(-10); day <= Last.AddDays(10); day = day.AddDays(1))
        {
            Assert.Equal(reference.TryGetValue(day, out var want), costs.TryGetValue(day, out var got));
            Assert.Equal(want, got);
            Assert.Equal(reference.ContainsKey(day), costs.ContainsKey(day));
        }

        Assert.Throws<KeyNotFoundException>(() => costs[Last.AddDays(1)]);
    }
}
