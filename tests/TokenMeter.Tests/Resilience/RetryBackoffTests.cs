using System.Net;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Resilience;

namespace TokenMeter.Tests.Resilience;

public sealed class RetryBackoffTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public void DelayAfter_NoJitter_DoublesFromTheInitialDelayUpToTheCap()
    {
        var backoff = new RetryBackoff(Second, TimeSpan.FromSeconds(10), jitter: 0);

        Assert.Equal(
            [1, 2, 4, 8, 10, 10],
            Enumerable.Range(1, 6).Select(a => backoff.DelayAfter(a).TotalSeconds));
        Assert.Equal(TimeSpan.FromSeconds(10), backoff.DelayAfter(int.MaxValue));
    }

    [Fact]
    public void DelayAfter_WithJitter_EveryWaitWithinAFifthBelowItsCeiling_AndTheyDiffer()
    {
        var backoff = new RetryBackoff(Second, TimeSpan.FromSeconds(30), random: new Random(12345));

        for (var attempt = 1; attempt <= 8; attempt++)
        {
            var ceiling = backoff.Ceiling(attempt);
            var delays = Enumerable.Range(0, 500).Select(_ => backoff.DelayAfter(attempt)).ToList();

            Assert.All(delays, d => Assert.InRange(d, ceiling * 0.8, ceiling));
            Assert.True(delays.Distinct().Count() > 100, $"attempt {attempt}: only {delays.Distinct().Count()} distinct waits");
        }
    }

    [Fact]
    public void DelayAfter_RetryAfterLongerThanTheBackoff_WaitedOutInFull()
    {
        var backoff = new RetryBackoff(Second, TimeSpan.FromMinutes(1));

        Assert.Equal(TimeSpan.FromSeconds(20), backoff.DelayAfter(1, retryAfter: TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public void DelayAfter_RetryAfterBeyondTheCap_Capped()
    {
        var backoff = new RetryBackoff(Second, TimeSpan.FromMinutes(1));

        Assert.Equal(TimeSpan.FromMinutes(1), backoff.DelayAfter(1, retryAfter: TimeSpan.FromHours(1)));
    }

    [Fact]
    public void DelayAfter_RetryAfterShorterThanTheBackoff_TheBackoffWins()
    {
        var backoff = new RetryBackoff(TimeSpan.FromSeconds(8), TimeSpan.FromMinutes(1), jitter: 0);

        Assert.Equal(TimeSpan.FromSeconds(16), backoff.DelayAfter(2, retryAfter: Second));
    }

    [Fact]
    public void RetryAfter_SecondsOrAnHttpDate_ReadAgainstTheClock()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        using var seconds = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        seconds.Headers.TryAddWithoutValidation("Retry-After", "7");
        using var date = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        date.Headers.TryAddWithoutValidation("Retry-After", "Wed, 25 Nov 2026 12:00:30 GMT");
        using var past = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        past.Headers.TryAddWithoutValidation("Retry-After", "Wed, 25 Nov 2026 11:00:00 GMT");
        using var none = new HttpResponseMessage(HttpStatusCode.InternalServerError);

        Assert.Equal(TimeSpan.FromSeconds(7), RetryBackoff.RetryAfter(seconds.Headers, time));
        Assert.Equal(TimeSpan.FromSeconds(30), RetryBackoff.RetryAfter(date.Headers, time));
        Assert.Equal(TimeSpan.Zero, RetryBackoff.RetryAfter(past.Headers, time));
        Assert.Null(RetryBackoff.RetryAfter(none.Headers, time));
    }

    [Fact]
    public void Constructor_CapBelowTheInitialDelayOrJitterOutOfRange_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryBackoff(TimeSpan.FromSeconds(2), Second));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryBackoff(Second, Second, jitter: 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryBackoff(TimeSpan.FromSeconds(-1), Second));
    }
}
