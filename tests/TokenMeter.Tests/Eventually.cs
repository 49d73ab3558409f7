using Microsoft.Extensions.Time.Testing;

namespace TokenMeter.Tests;

/// <summary>Waits for a condition that a background loop makes true, advancing a fake clock while it waits.</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, FakeTimeProvider? advance = null, TimeSpan? step = null, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("The condition did not become true in time.");
            }

            advance?.Advance(step ?? TimeSpan.FromMilliseconds(100));

            // Give the background loop a moment to run on the real scheduler.
            await Task.Delay(5);
        }
    }
}
