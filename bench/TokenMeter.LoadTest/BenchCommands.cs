using System.Globalization;
using TokenMeter.LoadTest.Harness;

namespace TokenMeter.LoadTest;

/// <summary>
/// The load and overhead measurements of issue 7 (figures in bench/RESULTS.md):
/// <c>sample-vs-sdk</c>, <c>sustained</c>, <c>export</c>. Each prints the figures the summary table needs.
/// </summary>
internal static class BenchCommands
{
    public const string Help = """
          sample-vs-sdk [seconds=12] [callers=1 16 64] [--memory] [--tail] [--sample-env NAME=VALUE]...
                                                    POST /api/hint of the sample (PostgreSQL, or --memory) vs the same SDK call made directly; 20 ms model;
                                                    --sample-env sets an environment variable of the sample (a runtime setting to compare, e.g. DOTNET_GCgen0size=0x4000000);
                                                    --tail probes both processes and prints what the slowest 1 % of calls have in common (GC pauses, PostgreSQL commands, where the time went)
          sustained [seconds=60] [callers=32]       metered SDK calls as fast as possible into PostgreSQL; queue depth per second, queue and memory per minute; store = calls
          export [rows=1000000] [--stages]          GET /api/usage/export of the sample over PostgreSQL: rows/s and the server's peak RSS (1/10 of the rows, then all)
        """;

    /// <summary>The model's fixed answer time in <c>sample-vs-sdk</c>: the app's overhead is judged against a realistic (if fast) model latency.</summary>
    public static readonly TimeSpan ModelDelay = TimeSpan.FromMilliseconds(20);

    public static async Task<int> SampleVsSdkAsync(string[] args)
    {
        var memory = args.Contains("--memory");
        var tail = args.Contains("--tail");
        var sampleEnvironment = new Dictionary<string, string>(StringComparer.Ordinal);
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--sample-env" && i + 1 < args.Length && args[i + 1].Split('=', 2) is [{ Length: > 0 } name, var value])
            {
                sampleEnvironment[name] = value;
                i++;
            }
            else if (args[i] is not "--memory" and not "--tail")
            {
                rest.Add(args[i]);
            }
        }

        var seconds = rest.Count > 0 ? double.Parse(rest[0], CultureInfo.InvariantCulture) : 12;
        int[] callers = rest.Count > 1 ? rest.Skip(1).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray() : [1, 16, 64];
        Print($"each caller count: {seconds:F0} s per side in 8 alternating phases (A B B A A B B A); model delay {ModelDelay.TotalMilliseconds:F0} ms");
        var levels = await OverheadBenchmark.RunAsync(TimeSpan.FromSeconds(seconds), callers, postgres: !memory, ModelDelay, Print, sampleEnvironment, tail).ConfigureAwait(false);

        Print(string.Empty);
        Print("A = sample POST /api/hint (child process, signed-in students, metered, " + (memory ? "in-memory store" : "PostgreSQL store") + "); B = same chat call, unmetered SDK client");
        Print("callers | A p50 ms | B p50 ms | p50 A/B | A p99 ms | B p99 ms | p99 A/B | A calls/s | B calls/s | thr B/A | A calls | B calls | failed A/B | sample CPU ms/call");
        var pass = true;
        foreach (var l in levels)
        {
            var p50 = l.Sample.P50 / l.Sdk.P50;
            var p99 = l.Sample.P99 / l.Sdk.P99;
            var thr = l.Sdk.Throughput / l.Sample.Throughput;
            pass &= p50 <= 1.10 && p99 <= 1.20 && thr <= 1.10 && l.Sample.Failed == 0 && l.Sdk.Failed == 0;
            Print(string.Create(CultureInfo.InvariantCulture,
                $"{l.Callers,7} | {l.Sample.P50,8:F2} | {l.Sdk.P50,8:F2} | {p50,7:F3} | {l.Sample.P99,8:F2} | {l.Sdk.P99,8:F2} | {p99,7:F3} | {l.Sample.Throughput,9:F0} | {l.Sdk.Throughput,9:F0} | {thr,7:F3} | {l.Sample.Calls,7} | {l.Sdk.Calls,7} | {l.Sample.Failed}/{l.Sdk.Failed} | {l.SampleCpuMsPerCall:F3}"));
            foreach (var e in l.Sample.Errors.Concat(l.Sdk.Errors))
            {
                Print("  error: " + e);
            }
        }

        Print(string.Create(CultureInfo.InvariantCulture,
            $"harness CPU ms/call (A, B): {string.Join(", ", levels.Select(l => $"{l.Callers}: {l.HarnessCpuMsPerCallA:F3}/{l.HarnessCpuMsPerCallB:F3}"))}"));
        Print($"goal: p50 and throughput ratios <= 1.10, p99 <= 1.20 -> {(pass ? "PASS" : "MISSED")} (load average now {Commands.LoadAverage()})");
        return 0;
    }

    public static async Task<int> SustainedAsync(string[] args)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 60;
        var callers = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 32;
        var o = await SustainedBenchmark.RunAsync(TimeSpan.FromSeconds(seconds), callers, Print).ConfigureAwait(false);

        var calls = new List<long>();
        var written = new List<long>();
        long prevCalls = 0, prevWritten = 0;
        foreach (var s in o.Series)
        {
            calls.Add(s.Calls - prevCalls);
            written.Add(s.Written - prevWritten);
            prevCalls = s.Calls;
            prevWritten = s.Written;
        }

        Print("per second (t = 1.." + o.Series.Count + "):");
        Print("  calls/s   " + string.Join(' ', calls));
        Print("  written/s " + string.Join(' ', written));
        Print("  queue     " + string.Join(' ', o.Series.Select(s => s.Queue)));
        Print("per minute: calls, records written, writer queue (median / max of the per-second samples), this process's RSS, managed heap and live heap after a full collection (the app: client, fake model, metering, writer; per-call latencies are not kept), PostgreSQL private memory (postmaster + backends, RssAnon) at the minute's end:");
        Print("minute | calls | written | queue median | queue max | app RSS MiB | managed heap MiB | live heap MiB | postgres private MiB");
        for (var m = 0; m * 60 < o.Series.Count; m++)
        {
            var minute = o.Series.Skip(m * 60).Take(60).ToArray();
            var before = m == 0 ? new SustainedBenchmark.Second(0, 0, 0, 0, 0, 0, 0, 0) : o.Series[(m * 60) - 1];
            var last = minute[^1];
            Print(string.Create(CultureInfo.InvariantCulture,
                $"{m + 1} | {last.Calls - before.Calls} | {last.Written - before.Written} | {Median(minute.Select(s => s.Queue))} | {minute.Max(s => s.Queue)} | {last.WorkingSet / 1048576.0:F0} | {last.ManagedHeap / 1048576.0:F0} | {(last.LiveHeap == 0 ? "-" : (last.LiveHeap / 1048576.0).ToString("F0", CultureInfo.InvariantCulture))} | {last.PostgresAnon / 1048576.0:F0}"));
        }
        var lost = o.Calls - o.Rows;
        var duplicates = o.Rows - o.DistinctIds;
        Print(string.Create(CultureInfo.InvariantCulture,
            $"calls {o.Calls} in {o.LoadSeconds:F1} s = {o.Calls / o.LoadSeconds:F0} calls/s; caller errors {o.CallerErrors}; records written {o.Rows} = {o.Rows / o.LoadSeconds:F0} records/s over the load (drain after it {o.DrainSeconds:F2} s)"));
        Print(string.Create(CultureInfo.InvariantCulture,
            $"queue: peak {o.PeakQueue}, median {Median(o.Series.Select(s => s.Queue))}; spooled {o.Spooled}; failed batches {o.FailedBatches} (in the warm-up before: {o.WarmUpFailedBatches}); CPU s: harness (client + fake model + writer) {o.HarnessCpuSeconds:F1}, postgres {o.PostgresCpuSeconds:F1}"));
        Print($"store: rows {o.Rows}, distinct ids {o.DistinctIds}; lost {lost}, duplicates {duplicates}");
        foreach (var e in o.Errors.Take(5))
        {
            Print("  error: " + e);
        }

        foreach (var w in o.Warnings)
        {
            Print("  logged by TokenMeter: " + w);
        }

        var pass = lost == 0 && duplicates == 0 && o.CallerErrors == 0;
        Print(pass ? "PASS" : "FAIL");
        return pass ? 0 : 1;
    }

    public static async Task<int> ExportAsync(string[] args)
    {
        var rows = args.Length > 0 && args[0] != "--stages" ? long.Parse(args[0], CultureInfo.InvariantCulture) : 1_000_000;
        var runs = await ExportBenchmark.RunAsync(rows, Print, stages: args.Contains("--stages")).ConfigureAwait(false);
        Print(string.Empty);
        Print("query | rows | expected | seconds | rows/s | MiB | first byte ms | server RSS before MiB | server RSS peak MiB | CPU s server/postgres/harness");
        foreach (var r in runs)
        {
            Print(string.Create(CultureInfo.InvariantCulture,
                $"{r.Query} | {r.Rows} | {r.ExpectedRows} | {r.Seconds:F2} | {r.RowsPerSecond:F0} | {r.Bytes / 1048576.0:F1} | {r.FirstByteMs:F0} | {r.RssBeforeBytes / 1048576.0:F0} | {r.PeakRssBytes / 1048576.0:F0} | {r.ServerCpuSeconds:F1}/{r.PostgresCpuSeconds:F1}/{r.HarnessCpuSeconds:F1}"));
        }

        Print("header: " + runs[0].Header);
        var all = runs.Where(r => r.Query == "(all)").ToArray();
        var best = all.Max(r => r.RowsPerSecond);
        var complete = runs.All(r => r.Rows == r.ExpectedRows);
        var small = runs[0];
        var growth = (all.Max(r => r.PeakRssBytes) - small.PeakRssBytes) / 1048576.0;
        Print(string.Create(CultureInfo.InvariantCulture,
            $"all rows exported: {complete}; best full export {best:F0} rows/s (issue 17 goal >= 300000: {(best >= 300_000 ? "PASS" : "MISSED")}); peak RSS {small.Rows:N0} rows {small.PeakRssBytes / 1048576.0:F0} MiB vs {all[0].Rows:N0} rows {all.Max(r => r.PeakRssBytes) / 1048576.0:F0} MiB ({growth:+0;-0} MiB)"));
        return complete ? 0 : 1;
    }

    private static long Median(IEnumerable<long> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];
    }

    private static void Print(string line) => Commands.Print(line);
}
