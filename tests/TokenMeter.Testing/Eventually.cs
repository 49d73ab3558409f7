using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Time.Testing;

namespace TokenMeter.Testing;

/// <summary>
/// The one way a test (or a fault scenario) waits for something a background loop, another process
/// or a server makes true: poll with a deadline on the real clock, optionally moving a
/// <see cref="FakeTimeProvider"/> on between polls, and fail with a message naming what was awaited.
/// Never use it to prove that nothing happened: await the component's own idle signal for that.
/// </summary>
public static class Eventually
{
    /// <summary>How long a wait lasts unless told otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The pause between two polls unless told otherwise (real time, so background loops run).</summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>How far <c>advance</c> moves the fake clock between polls unless told otherwise.</summary>
    public static readonly TimeSpan DefaultStep = TimeSpan.FromMilliseconds(100);

    /// <summary>Waits until <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> naming it otherwise.</summary>
    /// <param name="condition">Checked at once, then after every poll interval.</param>
    /// <param name="timeout">The deadline on the real clock (default 10 s).</param>
    /// <param name="pollInterval">The real-time pause between checks (default 10 ms).</param>
    /// <param name="advance">A fake clock moved on by <paramref name="step"/> before every pause, for loops that wait on it.</param>
    /// <param name="step">How far <paramref name="advance"/> moves per poll (default 100 ms).</param>
    /// <param name="what">What is awaited, for the failure message (the condition's source text by default).</param>
    public static Task TrueAsync(
        Func<bool> condition,
        TimeSpan? timeout = null,
        TimeSpan? pollInterval = null,
        FakeTimeProvider? advance = null,
        TimeSpan? step = null,
        [CallerArgumentExpression(nameof(condition))] string? what = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return ValueAsync(_ => ValueTask.FromResult(condition()), static met => met, timeout, pollInterval, advance, step, transient: null, what);
    }

    /// <summary>Waits until the asynchronous <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> naming it otherwise.</summary>
    /// <param name="condition">Checked at once, then after every poll interval; given a token cancelled at the deadline.</param>
    /// <param name="timeout">The deadline on the real clock (default 10 s).</param>
    /// <param name="pollInterval">The real-time pause between checks (default 10 ms).</param>
    /// <param name="transient">Exceptions that mean "not yet" (a server restarting) rather than a failure.</param>
    /// <param name="what">What is awaited, for the failure message (the condition's source text by default).</param>
    public static Task TrueAsync(
        Func<CancellationToken, ValueTask<bool>> condition,
        TimeSpan? timeout = null,
        TimeSpan? pollInterval = null,
        Func<Exception, bool>? transient = null,
        [CallerArgumentExpression(nameof(condition))] string? what = null) =>
        ValueAsync(condition, static met => met, timeout, pollInterval, advance: null, step: null, transient, what);

    /// <summary>
    /// Reads a value until <paramref name="until"/> accepts it and returns that value; throws
    /// <see cref="TimeoutException"/> naming what was awaited and the last value read otherwise.
    /// </summary>
    /// <param name="read">Reads the value; given a token cancelled at the deadline.</param>
    /// <param name="until">Whether the value read is the one awaited.</param>
    /// <param name="timeout">The deadline on the real clock (default 10 s).</param>
    /// <param name="pollInterval">The real-time pause between reads (default 10 ms).</param>
    /// <param name="advance">A fake clock moved on by <paramref name="step"/> before every pause.</param>
    /// <param name="step">How far <paramref name="advance"/> moves per poll (default 100 ms).</param>
    /// <param name="transient">Exceptions that mean "not yet" rather than a failure (rethrown if the deadline passes on one).</param>
    /// <param name="what">What is awaited, for the failure message (the acceptance test's source text by default).</param>
    public static async Task<T> ValueAsync<T>(
        Func<CancellationToken, ValueTask<T>> read,
        Func<T, bool> until,
        TimeSpan? timeout = null,
        TimeSpan? pollInterval = null,
        FakeTimeProvider? advance = null,
        TimeSpan? step = null,
        Func<Exception, bool>? transient = null,
        [CallerArgumentExpression(nameof(until))] string? what = null)
    {
        var polled = await PollAsync(read, until, timeout, pollInterval, advance, step, transient).ConfigureAwait(false);
        if (!polled.Met)
        {
            throw new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                $"Timed out after {polled.Elapsed.TotalSeconds:0.###} s waiting for {what ?? "a condition"} (last value: {Describe(polled.Value)})."));
        }

        return polled.Value;
    }

    /// <summary>
    /// Reads a value until <paramref name="until"/> accepts it or the deadline passes, without
    /// throwing on time-out: for scenarios that report a missed promise rather than fail on it.
    /// </summary>
    /// <param name="read">Reads the value; given a token cancelled at the deadline.</param>
    /// <param name="until">Whether the value read is the one awaited.</param>
    /// <param name="timeout">The deadline on the real clock (default 10 s).</param>
    /// <param name="pollInterval">The real-time pause between reads (default 10 ms).</param>
    /// <param name="advance">A fake clock moved on by <paramref name="step"/> before every pause.</param>
    /// <param name="step">How far <paramref name="advance"/> moves per poll (default 100 ms).</param>
    /// <param name="transient">Exceptions that mean "not yet" rather than a failure (rethrown if the deadline passes on one).</param>
    /// <returns>The last value read, and whether it was accepted.</returns>
    public static async Task<Polled<T>> PollAsync<T>(
        Func<CancellationToken, ValueTask<T>> read,
        Func<T, bool> until,
        TimeSpan? timeout = null,
        TimeSpan? pollInterval = null,
        FakeTimeProvider? advance = null,
        TimeSpan? step = null,
        Func<Exception, bool>? transient = null)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentNullException.ThrowIfNull(until);
        var limit = timeout is { } t && t > TimeSpan.Zero ? t : timeout is null ? DefaultTimeout : TimeSpan.Zero;
        var pause = pollInterval ?? DefaultPollInterval;
        var clock = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(limit);
        while (true)
        {
            T value;
            try
            {
                value = await read(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                // The read itself ran into the deadline.
                return new Polled<T>(default!, false, clock.Elapsed);
            }
            catch (Exception ex) when (transient is not null && transient(ex) && clock.Elapsed < limit)
            {
                await PauseAsync(advance, step, pause).ConfigureAwait(false);
                continue;
            }

            if (until(value))
            {
                return new Polled<T>(value, true, clock.Elapsed);
            }

            if (clock.Elapsed >= limit)
            {
                return new Polled<T>(value, false, clock.Elapsed);
            }

            await PauseAsync(advance, step, pause).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Awaits <paramref name="task"/> (a component's idle or done signal) with a deadline, moving
    /// <paramref name="advance"/> on while it waits when the component waits on a fake clock;
    /// throws <see cref="TimeoutException"/> naming the task otherwise.
    /// </summary>
    /// <param name="task">The signal awaited; its exception, if any, is rethrown.</param>
    /// <param name="timeout">The deadline on the real clock (default 10 s).</param>
    /// <param name="pollInterval">The real-time pause between clock steps (default 10 ms).</param>
    /// <param name="advance">A fake clock moved on by <paramref name="step"/> until the task completes.</param>
    /// <param name="step">How far <paramref name="advance"/> moves per poll (default 100 ms).</param>
    /// <param name="what">What is awaited, for the failure message (the task's source text by default).</param>
    public static async Task CompletesAsync(
        Task task,
        TimeSpan? timeout = null,
        TimeSpan? pollInterval = null,
        FakeTimeProvider? advance = null,
        TimeSpan? step = null,
        [CallerArgumentExpression(nameof(task))] string? what = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        var limit = timeout ?? DefaultTimeout;
        var pause = pollInterval ?? DefaultPollInterval;
        var clock = Stopwatch.StartNew();
        while (!task.IsCompleted)
        {
            if (clock.Elapsed >= limit)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture, $"Timed out after {clock.Elapsed.TotalSeconds:0.###} s waiting for {what ?? "a task"} to complete."));
            }

            advance?.Advance(step ?? DefaultStep);
            await Task.WhenAny(task, Task.Delay(pause)).ConfigureAwait(false);
        }

        await task.ConfigureAwait(false);
    }

    private static async Task PauseAsync(FakeTimeProvider? advance, TimeSpan? step, TimeSpan pause)
    {
        advance?.Advance(step ?? DefaultStep);

        // Real time: the loop being waited for runs on the real scheduler.
        await Task.Delay(pause).ConfigureAwait(false);
    }

    private static string Describe<T>(T value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        System.Collections.ICollection c => c.Count.ToString(CultureInfo.InvariantCulture) + " items",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}

/// <summary>What <see cref="Eventually.PollAsync{T}"/> saw last: the value, whether it was the one awaited, and how long the wait took.</summary>
/// <typeparam name="T">The type of value read.</typeparam>
/// <param name="Value">The last value read.</param>
/// <param name="Met">Whether the value was accepted before the deadline.</param>
/// <param name="Elapsed">How long the wait took.</param>
public readonly record struct Polled<T>(T Value, bool Met, TimeSpan Elapsed);
