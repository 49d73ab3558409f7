using System.Globalization;
using TokenMeter.LoadTest.Harness;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.LoadTest;

/// <summary>
/// <c>dotnet run -c Release --project bench/TokenMeter.LoadTest -- &lt;command&gt; [args]</c>.
/// Every command starts its own throwaway PostgreSQL cluster and fake model, prints its figures,
/// and cleans up. See bench/RESULTS.md for the figures and docs/reliability.md for the promises.
/// </summary>
internal static class Commands
{
    public static async Task<int> RunAsync(string[] args)
    {
        var command = args.Length > 0 ? args[0] : "help";
        var rest = args.Skip(1).ToArray();
        Print($"# {command} {string.Join(' ', rest)} — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");
        switch (command)
        {
            case "pg-outage":
                return await PgOutageAsync(Seconds(rest, 0, 60), Int(rest, 1, 16)).ConfigureAwait(false);
            case "sigterm":
                return await SignalAsync(SampleProcess.SigTerm, Seconds(rest, 0, 10), Int(rest, 1, 32), databaseDown: false).ConfigureAwait(false);
            case "sigkill":
                return await SignalAsync(SampleProcess.SigKill, Seconds(rest, 0, 10), Int(rest, 1, 32), databaseDown: false).ConfigureAwait(false);
            case "sigkill-spool":
                return await SignalAsync(SampleProcess.SigKill, Seconds(rest, 0, 10), Int(rest, 1, 32), databaseDown: true).ConfigureAwait(false);
            case "sample-vs-sdk":
                return await BenchCommands.SampleVsSdkAsync(rest).ConfigureAwait(false);
            case "sustained":
                return await BenchCommands.SustainedAsync(rest).ConfigureAwait(false);
            case "export":
                return await BenchCommands.ExportAsync(rest).ConfigureAwait(false);
            default:
                Print("""
                    commands:
                      pg-outage [outage-seconds=60] [callers=16]     PostgreSQL stopped under metered load, then started
                      sigterm [load-seconds=10] [callers=32]         the sample sent SIGTERM under load
                      sigkill [load-seconds=10] [callers=32]         the sample SIGKILLed under load, then restarted
                      sigkill-spool [load-seconds=10] [callers=32]   PostgreSQL down, the sample SIGKILLed, both restarted: the spool replays
                    """ + "\n" + BenchCommands.Help);
                return command == "help" ? 0 : 2;
        }
    }

    private static async Task<int> PgOutageAsync(TimeSpan outage, int callers)
    {
        await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
        var o = await FaultScenarios.StoreOutageAsync(server, TimeSpan.FromSeconds(5), outage, TimeSpan.FromSeconds(5), callers, 50_000_000, Print).ConfigureAwait(false);
        foreach (var (s, q, f) in o.Samples.Where((_, i) => i % 4 == 0))
        {
            Print($"  t={s,6:F1}s queue={q,7} spool-files={f}");
        }

        Print($"calls {o.Calls}, caller errors {o.CallerErrors}, rows {o.Rows}, distinct ids {o.DistinctIds}, lost {o.Calls - o.Rows}, duplicates {o.Rows - o.DistinctIds}");
        Print($"spooled {o.Spooled}, replayed {o.Replayed}, spool files at end {o.SpoolFilesAtEnd}, peak queue {o.PeakQueueLength}, drained {o.DrainTime.TotalSeconds:F1}s after the load");
        foreach (var e in o.Errors)
        {
            Print("  error: " + e);
        }

        var pass = o.CallerErrors == 0 && o.Rows == o.Calls && o.DistinctIds == o.Rows && o.SpoolFilesAtEnd == 0;
        Print(pass ? "PASS" : "FAIL");
        return pass ? 0 : 1;
    }

    private static async Task<int> SignalAsync(int signal, TimeSpan loadFor, int callers, bool databaseDown)
    {
        await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
        var flush = TimeSpan.FromSeconds(1);
        var o = await FaultScenarios.SignalUnderLoadAsync(server, signal, loadFor, callers, flush, databaseDown, restart: signal == SampleProcess.SigKill, Print).ConfigureAwait(false);
        Print($"signal {signal}: model calls {o.ModelRequests}, caller ok {o.CallerOk} ({o.CallsPerSecond:F0}/s), caller failed {o.CallerFailed}, exited {o.Exited} (code {o.ExitCode}) in {o.ExitTime.TotalSeconds:F2}s");
        Print($"rows after exit {o.RowsAfterExit}, spooled lines {o.SpooledLines}, rows after restart {o.RowsAfterRestart} (distinct {o.DistinctAfterRestart}), spool files after restart {o.SpoolFilesAfterRestart}, lost {o.Lost}");
        if (signal == SampleProcess.SigTerm)
        {
            var pass = o.Exited && o.Lost == 0 && o.DistinctAfterRestart == o.RowsAfterRestart;
            Print(pass ? "PASS" : "FAIL");
            return pass ? 0 : 1;
        }

        // The promise: a crash loses at most what was produced in the last flush interval (plus the
        // calls in flight); with the store down, also what waited for its retries before spooling.
        var window = flush.TotalSeconds + (databaseDown ? 0.3 : 0);
        var bound = (long)Math.Ceiling(o.CallsPerSecond * window) + callers;
        var ok = o.Lost <= bound && o.SpoolFilesAfterRestart == 0 && o.DistinctAfterRestart == o.RowsAfterRestart && o.RowsAfterRestart >= o.RowsAfterExit + o.SpooledLines;
        Print($"loss bound (rate x {window:F1}s + callers in flight) {bound}: {(ok ? "PASS" : "FAIL")}");
        return ok ? 0 : 1;
    }

    internal static void Print(string line)
    {
        Console.WriteLine(line);
    }

    internal static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static TimeSpan Seconds(string[] args, int index, double fallback) => TimeSpan.FromSeconds(args.Length > index ? double.Parse(args[index], CultureInfo.InvariantCulture) : fallback);

    private static int Int(string[] args, int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
}
