using TokenMeter.Postgres.Querying;
using TokenMeter.Querying;

namespace TokenMeter.Postgres.Tests;

public sealed class UserRunsTests
{
    [Fact]
    public void UserRuns_ReadInOrderOrAtRandom_EqualTheUsersRowsOneAfterAnother()
    {
        var random = new Random(13);
        var day = new DateOnly(2026, 11, 1);
        var runs = Enumerable.Range(0, 40)
            .Select(u => Enumerable.Range(0, random.Next(1, 30)).Select(d => new UserDailyUsage($"user-{u:D2}", day.AddDays(d), UsageFigures.Zero)).ToList())
            .ToArray();
        var flat = runs.SelectMany(r => r).ToList();
        var list = new UserRuns(runs);

        Assert.Equal(flat.Count, list.Count);
        Assert.Equal(flat, list);
        for (var i = 0; i < flat.Count; i++)
        {
            Assert.Same(flat[i], list[i]);
        }

        for (var n = 0; n < 2000; n++)
        {
            var i = random.Next(flat.Count);
            Assert.Same(flat[i], list[i]);
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => list[flat.Count]);
        Assert.Throws<ArgumentOutOfRangeException>(() => list[-1]);
        Assert.Empty(new UserRuns([]));
    }
}
