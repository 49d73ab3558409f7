using System.Diagnostics;
using OpenAI.Chat;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.LoadTest.Harness;

/// <summary>What a store-outage run saw.</summary>
public sealed record OutageOutcome(
    long Calls,
    long CallerErrors,
    IReadOnlyList<string> Errors,
    long Rows,
    long DistinctIds,
    long Spooled,
    long Replayed,
    int SpoolFilesAtEnd,
    long PeakQueueLength,
    TimeSpan DrainTime,
    IReadOnlyList<(double Seconds, long Queue, int SpoolFiles)> Samples);

/// <summary>What a signal-under-load run saw.</summary>
public sealed record ShutdownOutcome(
    int Signal,
    long ModelRequests,
    long CallerOk,
    long CallerFailed,
    double CallsPerSecond,
    bool Exited,
    int ExitCode,
    TimeSpan ExitTime,
    long RowsAfterExit,
    long SpooledLines,
    long RowsAfterRestart,
    long DistinctAfterRestart,
    int SpoolFilesAfterRestart,
    string Output)
{
    /// <summary>Model calls with no stored record at the end.</summary>
    public long Lost => ModelRequests - RowsAfterRestart;
}

/// <summary>The fault runs, shared by the short CI tests and the long documented commands.</summary>
public static class FaultScenarios
{
    /// <summary>
    /// Metered SDK calls into PostgreSQL from <paramref name="callers"/> loops; after
    /// <paramref name="before"/> the PostgreSQL server is stopped for <paramref name="outage"/>,
    /// then started; the load runs <paramref name="after"/> more; then every record must arrive.
    /// </summary>
    public static async Task<OutageOutcome> StoreOutageAsync(PostgresServer server, TimeSpan before, TimeSpan outage, TimeSpan after, int callers, long maxCalls, Action<string>? log = null)
    {
        var connectionString = await server.CreateDatabaseAsync("outage").ConfigureAwait(false);
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        try
        {
            await using var model = await HomeworkModel.StartAsync(TimeSpan.FromMilliseconds(1)).ConfigureAwait(false);
            await using var host = await MeteredHost.StartAsync(model.Endpoint, connectionString, spool, TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
            var total = before + outage + after;
            var samples = new List<(double, long, int)>();
            var clock = Stopwatch.StartNew();
            using var sampling = new CancellationTokenSource();
            long peak = 0;
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    var q = host.QueueLength();
                    peak = Math.Max(peak, q);
                    lock (samples)
                    {
                        samples.Add((clock.Elapsed.TotalSeconds, q, SampleClient.SpoolFileCount(spool)));
                    }

                    try
                    {
                        await Task.Delay(250, sampling.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            });

            List<ChatMessage> messages = [new UserChatMessage("Give me a hint for 2x + 3 = 7.")];
            var load = LoadRunner.RunAsync(callers, maxCalls, total, async _ => await host.Chat.CompleteChatAsync(messages).ConfigureAwait(false));
            await Task.Delay(before).ConfigureAwait(false);
            log?.Invoke($"{clock.Elapsed.TotalSeconds:F1}s stopping PostgreSQL");
            await server.StopAsync().ConfigureAwait(false);
            await Task.Delay(outage).ConfigureAwait(false);
            log?.Invoke($"{clock.Elapsed.TotalSeconds:F1}s starting PostgreSQL (spool files: {SampleClient.SpoolFileCount(spool)}, spooled: {host.Spooled})");
            await server.StartAgainAsync().ConfigureAwait(false);
            var result = await load.ConfigureAwait(false);
            log?.Invoke($"{clock.Elapsed.TotalSeconds:F1}s load done: {result.Calls} calls, {result.Failed} failed");

            var drain = Stopwatch.StartNew();
            var count = await SampleClient.WaitForRecordsAsync(connectionString, result.Calls, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            var drainTime = drain.Elapsed;
            await host.StopAsync().ConfigureAwait(false);
            await sampling.CancelAsync().ConfigureAwait(false);
            await sampler.ConfigureAwait(false);
            count = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
            return new OutageOutcome(result.Calls, result.Failed, result.Errors, count.Rows, count.DistinctIds, host.Spooled, host.Replayed,
                SampleClient.SpoolFileCount(spool), peak, drainTime, samples);
        }
        finally
        {
            try
            {
                Directory.Delete(spool, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// The sample as a child process under load from <paramref name="callers"/> loops on /api/hint;
    /// after <paramref name="loadFor"/> it is sent <paramref name="signal"/>. With
    /// <paramref name="databaseDown"/> the PostgreSQL server is stopped first (so records go to the
    /// spool) and started again after the child exits. With <paramref name="restart"/> the sample
    /// is started again on the same spool folder and given time to replay.
    /// </summary>
    public static async Task<ShutdownOutcome> SignalUnderLoadAsync(PostgresServer server, int signal, TimeSpan loadFor, int callers, TimeSpan flushInterval, bool databaseDown, bool restart, Action<string>? log = null)
    {
        var connectionString = await server.CreateDatabaseAsync("signal").ConfigureAwait(false);
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        try
        {
            await using var model = await HomeworkModel.StartAsync(TimeSpan.FromMilliseconds(2)).ConfigureAwait(false);
            var settings = SampleProcess.Settings(connectionString, model.Endpoint, spool, flushInterval);
            await using var sample = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
            log?.Invoke($"sample pid {sample.Pid} on {sample.BaseAddress}");
            if (databaseDown)
            {
                await server.StopAsync().ConfigureAwait(false);
                log?.Invoke("PostgreSQL stopped");
            }

            using var http = SampleClient.Create(sample.BaseAddress);
            using var stopLoad = new CancellationTokenSource();
            var load = LoadRunner.RunAsync(callers, 1_000_000, loadFor + TimeSpan.FromSeconds(30), ct => SampleClient.HintAsync(http, ct), stopLoad.Token);
            await Task.Delay(loadFor).ConfigureAwait(false);
            var before = model.RequestCount;
            var exit = Stopwatch.StartNew();
            sample.Signal(signal);
            log?.Invoke($"sent signal {signal} after {before} model calls");
            var exited = await sample.WaitForExitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            var exitTime = exit.Elapsed;
            await stopLoad.CancelAsync().ConfigureAwait(false);
            var result = await load.ConfigureAwait(false);
            var modelRequests = model.RequestCount;
            log?.Invoke($"exited={exited} in {exitTime.TotalSeconds:F1}s; callers ok {result.Ok}, failed {result.Failed}; model requests {modelRequests}");

            long spooledLines = CountSpoolLines(spool);
            if (databaseDown)
            {
                await server.StartAgainAsync().ConfigureAwait(false);
                log?.Invoke($"PostgreSQL started; {spooledLines} records in the spool");
            }

            var afterExit = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
            var afterRestart = afterExit;
            var spoolFiles = SampleClient.SpoolFileCount(spool);
            if (restart)
            {
                await using var again = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
                afterRestart = await SampleClient.WaitForRecordsAsync(connectionString, modelRequests, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                var wait = Stopwatch.StartNew();
                while (SampleClient.SpoolFileCount(spool) > 0 && wait.Elapsed < TimeSpan.FromSeconds(10))
                {
                    await Task.Delay(100).ConfigureAwait(false);
                }

                afterRestart = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
                spoolFiles = SampleClient.SpoolFileCount(spool);
                again.Signal(SampleProcess.SigTerm);
                await again.WaitForExitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }

            return new ShutdownOutcome(signal, modelRequests, result.Ok, result.Failed, result.Ok / loadFor.TotalSeconds, exited, exited ? sample.ExitCode : -1, exitTime,
                afterExit.Rows, spooledLines, afterRestart.Rows, afterRestart.DistinctIds, spoolFiles, sample.Output);
        }
        finally
        {
            try
            {
                Directory.Delete(spool, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static long CountSpoolLines(string spool)
    {
        if (!Directory.Exists(spool))
        {
            return 0;
        }

        long lines = 0;
        foreach (var file in Directory.EnumerateFiles(spool, "*.jsonl", SearchOption.AllDirectories))
        {
            lines += File.ReadLines(file).Count(l => l.Length > 0);
        }

        return lines;
    }
}
