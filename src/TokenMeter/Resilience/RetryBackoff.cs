using System.Net.Http.Headers;

namespace TokenMeter.Resilience;

/// <summary>
/// The one back-off of every retry loop (the writer's store writes and spool probes, alert and
/// webhook deliveries, scheduled and manual reports): the wait after attempt <c>n</c> is the initial
/// delay doubled <c>n - 1</c> times, capped, less a random part of up to <see cref="Jitter"/> of it,
/// so instances that failed together do not all retry together (the cap stays an upper bound). A
/// receiver's <c>Retry-After</c> is waited out in full, up to the cap.
/// </summary>
internal sealed class RetryBackoff
{
    /// <summary>The share of each wait that is random unless told otherwise: up to a fifth shorter.</summary>
    public const double DefaultJitter = 0.2;

    private readonly Random _random;

    /// <summary>Creates a back-off.</summary>
    /// <param name="initialDelay">The wait after the first failed attempt (before jitter); zero retries at once.</param>
    /// <param name="maxDelay">The longest wait, <c>Retry-After</c> included; at least <paramref name="initialDelay"/>.</param>
    /// <param name="jitter">The most a wait is shortened at random, as a share of it (0 to 1).</param>
    /// <param name="random">The source of jitter; <see cref="Random.Shared"/> unless a test fixes it.</param>
    public RetryBackoff(TimeSpan initialDelay, TimeSpan maxDelay, double jitter = DefaultJitter, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(initialDelay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDelay, initialDelay);
        ArgumentOutOfRangeException.ThrowIfNegative(jitter);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(jitter, 1);
        InitialDelay = initialDelay;
        MaxDelay = maxDelay;
        Jitter = jitter;
        _random = random ?? Random.Shared;
    }

    /// <summary>The wait after the first failed attempt, before jitter.</summary>
    public TimeSpan InitialDelay { get; }

    /// <summary>The longest wait.</summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>The most a wait is shortened at random, as a share of it.</summary>
    public double Jitter { get; }

    /// <summary>The longest wait after failed attempt <paramref name="attempt"/>: the doubled delay, capped, before jitter.</summary>
    /// <param name="attempt">The attempt that failed, 1 for the first.</param>
    public TimeSpan Ceiling(int attempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        var ticks = InitialDelay.Ticks * Math.Pow(2, Math.Min(attempt - 1, 62));
        return TimeSpan.FromTicks((long)Math.Min(ticks, MaxDelay.Ticks));
    }

    /// <summary>How long to wait after failed attempt <paramref name="attempt"/> before the next one.</summary>
    /// <param name="attempt">The attempt that failed, 1 for the first.</param>
    /// <param name="retryAfter">What the receiver asked for (<c>Retry-After</c>), if anything: waited out in full, up to <see cref="MaxDelay"/>.</param>
    public TimeSpan DelayAfter(int attempt, TimeSpan? retryAfter = null)
    {
        var ceiling = Ceiling(attempt);
        double share;
        lock (_random)
        {
            share = _random.NextDouble();
        }

        var delay = TimeSpan.FromTicks((long)(ceiling.Ticks * (1 - (Jitter * share))));
        if (retryAfter is { } asked && asked > delay)
        {
            delay = asked < MaxDelay ? asked : MaxDelay;
        }

        return delay;
    }

    /// <summary>
    /// The wait a response's <c>Retry-After</c> header asks for (seconds, or an HTTP date read
    /// against <paramref name="time"/>); null when it has none. A date in the past asks for no wait.
    /// </summary>
    /// <param name="headers">The response's headers.</param>
    /// <param name="time">The clock a date is measured against.</param>
    public static TimeSpan? RetryAfter(HttpResponseHeaders headers, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(time);
        return headers.RetryAfter switch
        {
            { Delta: { } delta } => delta < TimeSpan.Zero ? TimeSpan.Zero : delta,
            { Date: { } date } => date > time.GetUtcNow() ? date - time.GetUtcNow() : TimeSpan.Zero,
            _ => null,
        };
    }
}
