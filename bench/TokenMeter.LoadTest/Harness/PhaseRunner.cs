using System.Diagnostics;
using System.Globalization;
using TokenMeter.Testing.Scenarios;

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
/// user), calling for a fixed time: <see cref="LoadRunner"/> with no call limit. Every call is awaited to
/// its end when the time is up, so the phase's elapsed time covers every counted call.
/// </summary>
public static class PhaseRunner
{
    public static async Task<PhaseResult> RunAsync(int callers, TimeSpan duration, Func<int, Task> call)
    {
        // Calls in flight when the time is up are awaited to their end (they get no cancellation).
        var run = await LoadRunner.RunAsync(callers, long.MaxValue, duration, (index, _) => call(index)).ConfigureAwait(false);
        return new PhaseResult { Ok = run.Ok, Failed = run.Failed, Elapsed = run.Elapsed, LatenciesMs = [.. run.LatenciesMs], Errors = run.Errors };
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

/// <summary>
/// CPU time of the threads of a process that carry one name (from /proc/&lt;pid&gt;/task/*/comm), e.g. the
/// runtime's background tiered-compilation worker: how much of a process's CPU is the JIT still at work.
/// </summary>
public sealed class ThreadCpu(int pid, string threadName)
{
    /// <summary>The name Linux shows for .NET's tiered-compilation background worker (names are cut at 15 characters).</summary>
    public const string TieredCompilation = ".NET Tiered Com";

    private readonly Dictionary<int, long> _ticks = [];

    /// <summary>CPU seconds the named threads used since the last call (the first call counts from each thread's start).</summary>
    public double TakeSeconds()
    {
        long used = 0;
        try
        {
            foreach (var dir in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n') != threadName)
                    {
                        continue;
                    }

                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    var ticks = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
                    var tid = int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
                    used += ticks - _ticks.GetValueOrDefault(tid);
                    _ticks[tid] = ticks;
                }
                catch (IOException)
                {
                    // The thread ended between the listing and the read.
                }
            }
        }
        catch (IOException)
        {
        }

        return used / 100.0; // USER_HZ
    }
}
