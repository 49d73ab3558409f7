using System.Diagnostics;
using System.Globalization;

namespace TokenMeter.LoadTest.Harness;

/// <summary>What one timed phase of <see cref="PhaseRunner"/> saw.</summary>
public sealed class PhaseResult
{
    public required long Ok { get; init; }
    public required long Failed { get; init; }
    public required TimeSpan Elapsed { get; init; }
    public required List<double> LatenciesMs { get; init; }
    public required IReadOnlyList<string> Errors { get; init; }
}

/// <summary>
/// <c>callers</c> concurrent loops, each knowing its own index (so each can be a different signed-in
/// user), calling for a fixed time. Unlike <see cref="LoadRunner"/> every call is awaited to its end
/// when the time is up, so the phase's elapsed time covers every counted call.
/// </summary>
public static class PhaseRunner
{
    public static async Task<PhaseResult> RunAsync(int callers, TimeSpan duration, Func<int, Task> call)
    {
        long ok = 0;
        long failed = 0;
        var latencies = new List<double>[callers];
        var errors = new List<string>();
        var clock = Stopwatch.StartNew();
        var stopAt = duration;

        async Task Loop(int index)
        {
            var mine = latencies[index] = new List<double>(4096);
            await Task.Yield();
            while (clock.Elapsed < stopAt)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await call(index).ConfigureAwait(false);
                    mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    Interlocked.Increment(ref ok);
                }
#pragma warning disable CA1031 // A failed call is counted, not fatal.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    Interlocked.Increment(ref failed);
                    lock (errors)
                    {
                        if (errors.Count < 10)
                        {
                            errors.Add(ex.GetType().Name + ": " + ex.Message);
                        }
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, callers).Select(Loop)).ConfigureAwait(false);
        var elapsed = clock.Elapsed;
        var all = new List<double>(latencies.Sum(l => l.Count));
        foreach (var l in latencies)
        {
            all.AddRange(l);
        }

        return new PhaseResult { Ok = ok, Failed = failed, Elapsed = elapsed, LatenciesMs = all, Errors = errors };
    }
}

/// <summary>CPU time of a process from /proc (user + system), for "CPU per call" figures.</summary>
public static class ProcessCpu
{
    private static readonly double TicksPerSecond = 100.0; // USER_HZ on Linux.

    /// <summary>CPU seconds used so far by <paramref name="pid"/> (all threads), or NaN when unreadable.</summary>
    public static double Seconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");

            // Fields after the command name, which is in parentheses and may contain spaces.
            var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var utime = long.Parse(rest[11], CultureInfo.InvariantCulture);
            var stime = long.Parse(rest[12], CultureInfo.InvariantCulture);
            return (utime + stime) / TicksPerSecond;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    /// <summary>CPU seconds used so far by <paramref name="parentPid"/> and its live children (the PostgreSQL postmaster and its backends).</summary>
    public static double ChildrenOf(int parentPid)
    {
        if (parentPid <= 0)
        {
            return double.NaN;
        }

        var total = Seconds(parentPid);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(rest[1], CultureInfo.InvariantCulture) == parentPid)
                {
                    total += (long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return total;
    }
}
