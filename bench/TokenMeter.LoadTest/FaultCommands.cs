using TokenMeter.Testing.Postgres;
using TokenMeter.Testing.Scenarios;
using static TokenMeter.LoadTest.Commands;

namespace TokenMeter.LoadTest;

/// <summary>
/// The fault commands. Each runs the same scenario code as tests/TokenMeter.FaultTests (only longer
/// or wider), prints the outcome's report and exits 0 when every promise held, 1 otherwise.
/// </summary>
internal static class FaultCommands
{
    public const string Help = """
          pg-outage [outage-seconds=60] [callers=16]     PostgreSQL stopped under metered load, then started
          sigterm [load-seconds=10] [callers=32]         the sample sent SIGTERM under load
          sigkill [load-seconds=10] [callers=32]         the sample SIGKILLed under load, then restarted
          sigkill-spool [load-seconds=10] [callers=32]   PostgreSQL down, the sample SIGKILLed, both restarted: the spool replays
          model-faults [calls=2000] [callers=16]         the model answers 500/429/malformed/no usage/cut streams among successes
          budget-burst [parallel=50] [rounds=3]          parallel calls for one user at the budget limit, through the sample on PostgreSQL
        """;

    /// <summary>Runs <paramref name="command"/> when it is a fault command; null otherwise.</summary>
    public static async Task<int?> RunAsync(string command, string[] rest)
    {
        switch (command)
        {
            case "pg-outage":
            {
                await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
                var o = await FaultScenarios.StoreOutageAsync(server, TimeSpan.FromSeconds(5), Seconds(rest, 0, 60), TimeSpan.FromSeconds(5), Int(rest, 1, 16), 50_000_000, Print).ConfigureAwait(false);
                foreach (var (s, q, f) in o.Samples.Where((_, i) => i % 4 == 0))
                {
                    Print($"  t={s,6:F1}s queue={q,7} spool-files={f}");
                }

                return Finish(o.Report(), o.Failures);
            }

            case "sigterm":
            case "sigkill":
            case "sigkill-spool":
            {
                await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
                var signal = command == "sigterm" ? SampleProcess.SigTerm : SampleProcess.SigKill;
                var o = await FaultScenarios.SignalUnderLoadAsync(server, signal, Seconds(rest, 0, 10), Int(rest, 1, 32), TimeSpan.FromSeconds(1),
                    databaseDown: command == "sigkill-spool", restart: signal == SampleProcess.SigKill, Print).ConfigureAwait(false);
                return Finish(o.Report(), o.Failures);
            }

            case "model-faults":
            {
                var o = await ModelFaultScenario.RunAsync(Int(rest, 0, 2000), Int(rest, 1, 16), connectionString: null, Print).ConfigureAwait(false);
                return Finish(o.Report(), o.Failures);
            }

            case "budget-burst":
            {
                await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
                var o = await BudgetBurstScenario.RunAsync(server, Int(rest, 0, 50), Int(rest, 1, 3), Print).ConfigureAwait(false);
                return Finish(o.Report(), o.Failures);
            }

            default:
                return null;
        }
    }

    private static int Finish(IEnumerable<string> report, IReadOnlyList<string> failures)
    {
        foreach (var line in report)
        {
            Print(line);
        }

        Print($"# done {DateTime.UtcNow:HH:mm:ss} UTC, load average {LoadAverage()}");
        return failures.Count == 0 ? 0 : 1;
    }
}
