using Microsoft.Extensions.Time.Testing;
using TokenMeter.Testing;

namespace TokenMeter.Tests.Testing;

/// <summary>The shared wait every test uses: it must end at its deadline and say what it waited for.</summary>
public sealed class EventuallyTests
{
    [Fact]
    public async Task TrueAsync_NeverTrue_TimesOutNamingTheCondition()
    {
        var never = false;

        var ex = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.TrueAsync(() => never, TimeSpan.FromMilliseconds(50)));

        Assert.Contains("() => never", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ValueAsync_NeverAccepted_TimesOutNamingWhatAndTheLastValue()
    {
        var ex = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.ValueAsync(_ => ValueTask.FromResult(7), n => n >= 10, TimeSpan.FromMilliseconds(50), what: "ten stored records"));

        Assert.Contains("ten stored records", ex.Message, StringComparison.Ordinal);
        Assert.Contains("last value: 7", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrueAsync_WithAFakeClock_MovesItOnUntilTheConditionHolds()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var due = clock.GetUtcNow() + TimeSpan.FromMinutes(5);

        await Eventually.TrueAsync(() => clock.GetUtcNow() >= due, advance: clock, step: TimeSpan.FromMinutes(1));

        Assert.InRange(clock.GetUtcNow(), due, due + TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task PollAsync_TransientFailuresThenAValue_ReturnsTheValue()
    {
        var reads = 0;

        var polled = await Eventually.PollAsync(
            _ => ++reads < 3 ? throw new InvalidOperationException("not yet") : ValueTask.FromResult(reads),
            n => n >= 3,
            transient: ex => ex is InvalidOperationException);

        Assert.True(polled.Met);
        Assert.Equal(3, polled.Value);
    }

    [Fact]
    public async Task PollAsync_NeverAccepted_ReturnsTheLastValueWithoutThrowing()
    {
        var polled = await Eventually.PollAsync(_ => ValueTask.FromResult(1), n => n > 1, TimeSpan.FromMilliseconds(30));

        Assert.False(polled.Met);
        Assert.Equal(1, polled.Value);
    }

    [Fact]
    public async Task CompletesAsync_TaskNeverCompletes_TimesOutNamingIt()
    {
        var never = new TaskCompletionSource();

        var ex = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.CompletesAsync(never.Task, TimeSpan.FromMilliseconds(50)));

        Assert.Contains("never.Task", ex.Message, StringComparison.Ordinal);
    }
}
