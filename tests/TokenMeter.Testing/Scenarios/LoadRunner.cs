using System.Diagnostics;

namespace TokenMeter.Testing.Scenarios;

/// <summary>Outcome of one bounded load run.</summary>
public sealed class LoadResult
{
    public required int Callers { get; init; }
    public required long Ok { get; init; }
    public required long Failed { get; init; }
    public required TimeSpan Elapsed { get; init; }
    public required double[] LatenciesMs { get; init; }
    public required IReadOnlyList<string> Errors { get; init; }

    public long Calls => Ok + Failed;

    public double Throughput => Ok / Elapsed.TotalSeconds;

    public double Percentile(double p) => Stats.Percentile(LatenciesMs, p);
}

/// <summary>
/// Runs <c>callers</c> concurrent loops of one call each, bounded by a call count and a time limit
/// (whichever comes first), and keeps every successful call's latency.
/// </summary>
public static class LoadRunner
{
    public static Task<LoadResult> RunAsync(int callers, long maxCalls, TimeSpan maxTime, Func<CancellationToken, Task> call, CancellationToken cancellationToken = default)
        => RunAsync(callers, maxCalls, maxTime, (_, ct) => call(ct), cancellationToken);

    /// <summary>The same, with each loop knowing its own index (so each can be a different signed-in user).</summary>
    public static Task<LoadResult> RunAsync(int callers, long maxCalls, TimeSpan maxTime, Func<int, CancellationToken, Task> call, CancellationToken cancellationToken = default)
        => RunCoreAsync(callers, maxCalls, maxTime, call, keepLatencies: true, cancellationToken);

    /// <summary>
    /// The same, counting calls without keeping their latencies (<see cref="LoadResult.LatenciesMs"/> is empty):
    /// for long runs whose own memory must stay flat (a kept latency is 8 bytes a call, 56 MiB over 7 million calls).
    /// </summary>
    public static Task<LoadResult> RunCountingAsync(int callers, long maxCalls, TimeSpan maxTime, Func<CancellationToken, Task> call, CancellationToken cancellationToken = default)
        => RunCoreAsync(callers, maxCalls, maxTime, (_, ct) => call(ct), keepLatencies: false, cancellationToken);

    private static async Task<LoadResult> RunCoreAsync(int callers, long maxCalls, TimeSpan maxTime, Func<int, CancellationToken, Task> call, bool keepLatencies, CancellationToken cancellationToken)
    {
        long issued = 0;
        long ok = 0;
        long failed = 0;
        var latencies = new List<double>[callers];
        var errors = new List<string>();
        var clock = Stopwatch.StartNew();
        using var timeLimit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeLimit.CancelAfter(maxTime);
        var token = timeLimit.Token;

        async Task Loop(int index)
        {
            var mine = latencies[index] = new List<double>(keepLatencies ? 1024 : 0);
            await Task.Yield();
            while (!token.IsCancellationRequested && Interlocked.Increment(ref issued) <= maxCalls)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await call(index, CancellationToken.None).ConfigureAwait(false);
                    if (keepLatencies)
                    {
                        mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    }

                    Interlocked.Increment(ref ok);
                }
#pragma warning disable CA1031 // A failed call is counted, not fatal.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    Interlocked.Increment(ref failed);
                    lock (errors)
                    {
                        if (errors.Count < 20)
                        {
                            errors.Add(ex.GetType().Name + ": " + ex.Message);
                        }
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, callers).Select(Loop)).ConfigureAwait(false);
        var elapsed = clock.Elapsed;
        return new LoadResult
        {
            Callers = callers,
            Ok = ok,
            Failed = failed,
            Elapsed = elapsed,
            LatenciesMs = latencies.SelectMany(l => l).ToArray(),
            Errors = errors,
        };
    }
}

public static class Stats
{
    public static double Percentile(double[] values, double p)
    {
        if (values.Length == 0)
        {
            return double.NaN;
        }

        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        var rank = p / 100.0 * (sorted.Length - 1);
        var lo = (int)Math.Floor(rank);
        var hi = (int)Math.Ceiling(rank);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (rank - lo));
    }
}
