using TokenMeter.Metering;

namespace TokenMeter.Tests.Metering;

public sealed class UsageIdsTests
{
    [Fact]
    public void NewVersion7_CarriesVersionVariantAndTheCallsMillisecond()
    {
        var at = new DateTimeOffset(2026, 11, 25, 9, 30, 12, 345, TimeSpan.Zero);

        var id = UsageIds.NewVersion7(at);

        Assert.Equal(7, id.Version);
        Assert.Equal(0b10, id.Variant >> 2);
        var text = id.ToString("N");
        Assert.Equal(at.ToUnixTimeMilliseconds(), Convert.ToInt64(text[..12], 16));
    }

    [Fact]
    public void NewVersion7_SameMillisecondOnManyThreads_AllDistinctAndOrderedByTime()
    {
        var at = DateTimeOffset.UnixEpoch.AddYears(56);
        var ids = new System.Collections.Concurrent.ConcurrentBag<Guid>();
        Parallel.For(0, 8, _ =>
        {
            for (var i = 0; i < 25_000; i++)
            {
                ids.Add(UsageIds.NewVersion7(at));
            }
        });

        Assert.Equal(200_000, ids.Distinct().Count());
        var later = UsageIds.NewVersion7(at.AddMilliseconds(1));
        Assert.All(ids, id => Assert.True(id.CompareTo(later) < 0));
    }

    [Fact]
    public void NewVersion7_BeforeUnixEpoch_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => UsageIds.NewVersion7(DateTimeOffset.UnixEpoch.AddMilliseconds(-1)));
    }
}
