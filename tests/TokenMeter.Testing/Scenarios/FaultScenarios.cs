using System.Diagnostics;
using Npgsql;
using OpenAI.Chat;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Testing.Scenarios;

/// <summary>What a store-outage run saw, and which promises it kept.</summary>
public sealed record OutageOutcome(
    TimeSpan Outage,
    int Callers,
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
    IReadOnlyList<(double Seconds, long Queue, int SpoolFiles)> Samples)
{
    /// <summary>Calls with no stored record.</summary>
    public long Lost => Calls - Rows;

    /// <summary>Rows stored twice (a replay counted twice would show here).</summary>
    public long Duplicates => Rows - DistinctIds;

    /// <summary>The promises this run broke (docs/reliability.md); empty when it passed.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            var failures = new List<string>();
            if (CallerErrors != 0)
            {
                failures.Add($"{CallerErrors} caller errors (must be 0): {string.Join("; ", Errors.Take(3))}");
            }

            if (Lost != 0)
            {
                failures.Add($"{Lost} records lost (calls {Calls}, rows {Rows})");
            }

            if (Duplicates != 0)
            {
                failures.Add($"{Duplicates} duplicate rows");
            }

            if (SpoolFilesAtEnd != 0)
            {
                failures.Add($"{SpoolFilesAtEnd} spool files left (spool not drained)");
            }

            if (Spooled == 0)
            {
                failures.Add("nothing was spooled: the outage did not reach the writer");
            }

            if (Replayed != Spooled)
            {
                failures.Add($"spooled {Spooled} but replayed {Replayed}");
            }

            return failures;
        }
    }

    /// <summary>The lines the command prints (and a test shows when it fails).</summary>
    public IEnumerable<string> Report()
    {
        yield return $"PostgreSQL stopped {Outage.TotalSeconds:F0} s under metered SDK load from {Callers} callers";
        yield return $"calls {Calls}, caller errors {CallerErrors}, rows {Rows}, distinct ids {DistinctIds}, lost {Lost}, duplicates {Duplicates}";
        yield return $"spooled {Spooled}, replayed {Replayed}, spool files at end {SpoolFilesAtEnd}, peak queue {PeakQueueLength}, drained {DrainTime.TotalSeconds:F1}s after the load";
        foreach (var e in Errors.Take(5))
        {
            yield return "  error: " + e;
        }

        foreach (var f in Failures)
        {
            yield return "  FAILED: " + f;
        }

        yield return Failures.Count == 0 ? "PASS" : "FAIL";
    }
}

/// <summary>What a signal-under-load run saw, and which promises it kept.</summary>
public sealed record ShutdownOutcome(
    int Signal,
    bool DatabaseDown,
    bool Restarted,
    int Callers,
    TimeSpan FlushInterval,
    long ModelRequests,
    long ModelRequestsAtSignal,
    long ModelRequestsInWindowBeforeSignal,
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
    /// <summary>
    /// Time whose records a crash may lose (docs/reliability.md): the flush interval, plus one
    /// store write in progress (<see cref="StoreWriteAllowance"/>), plus — with the store down — the
    /// retries a batch waits for before it is spooled (0.1 s + 0.2 s with the harness's settings).
    /// </summary>
    public static TimeSpan LossWindow(TimeSpan flushInterval, bool databaseDown) =>
        flushInterval + StoreWriteAllowance + (databaseDown ? TimeSpan.FromSeconds(0.3) : TimeSpan.Zero);

    /// <summary>Allowance for one batch being written to the store when the process dies.</summary>
    public static TimeSpan StoreWriteAllowance { get; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Model calls with no stored record at the end.</summary>
    public long Lost => ModelRequests - RowsAfterRestart;

    /// <summary>Rows stored twice.</summary>
    public long Duplicates => RowsAfterRestart - DistinctAfterRestart;

    /// <summary>
    /// The most a crash may lose: the model calls made in the <see cref="LossWindow"/> before the
    /// signal, plus the calls in flight (one per caller), plus the calls that finished after the
    /// signal (SIGKILL is not instant).
    /// </summary>
    public long LossBound => ModelRequestsInWindowBeforeSignal + Callers + (ModelRequests - ModelRequestsAtSignal);

    /// <summary>The promises this run broke (docs/reliability.md); empty when it passed.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            var failures = new List<string>();
            if (!Exited)
            {
                failures.Add("the sample did not exit");
            }

            if (CallerOk == 0)
            {
                failures.Add("no call succeeded before the signal");
            }

            if (Duplicates != 0)
            {
                failures.Add($"{Duplicates} duplicate rows");
            }

            if (Signal == SampleProcess.SigTerm)
            {
                if (Lost != 0)
                {
                    failures.Add($"{Lost} records lost on SIGTERM (must be 0)");
                }

                if (ExitCode != 0)
                {
                    failures.Add($"exit code {ExitCode} after SIGTERM (must be 0)");
                }
            }
            else
            {
                if (Lost < 0 || Lost > LossBound)
                {
                    failures.Add($"{Lost} records lost, bound {LossBound}");
                }

                if (Restarted && SpoolFilesAfterRestart != 0)
                {
                    failures.Add($"{SpoolFilesAfterRestart} spool files left after the restart (not replayed)");
                }

                if (Restarted && RowsAfterRestart < RowsAfterExit + SpooledLines)
                {
                    failures.Add($"rows after restart {RowsAfterRestart} < rows after exit {RowsAfterExit} + spooled {SpooledLines} (spool not replayed)");
                }

                if (DatabaseDown && SpooledLines == 0)
                {
                    failures.Add("nothing was spooled although PostgreSQL was down");
                }
            }

            return failures;
        }
    }

    /// <summary>The lines the command prints (and a test shows when it fails).</summary>
    public IEnumerable<string> Report()
    {
        var name = Signal == SampleProcess.SigTerm ? "SIGTERM" : "SIGKILL";
        yield return $"{name}{(DatabaseDown ? " with PostgreSQL down" : string.Empty)}: model calls {ModelRequests}, caller ok {CallerOk} ({CallsPerSecond:F0}/s), caller failed {CallerFailed}, exited {Exited} (code {ExitCode}) in {ExitTime.TotalSeconds:F2}s";
        yield return $"rows after exit {RowsAfterExit}, spooled lines {SpooledLines}, rows after restart {RowsAfterRestart} (distinct {DistinctAfterRestart}), spool files after restart {SpoolFilesAfterRestart}, lost {Lost}, duplicates {Duplicates}";
        if (Signal != SampleProcess.SigTerm)
        {
            yield return $"loss bound {LossBound} = {ModelRequestsInWindowBeforeSignal} calls in the {LossWindow(FlushInterval, DatabaseDown).TotalSeconds:F1}s before the signal (flush {FlushInterval.TotalSeconds:F1}s + store write {StoreWriteAllowance.TotalSeconds:F1}s{(DatabaseDown ? " + retries 0.3s" : string.Empty)}) + {Callers} in flight + {ModelRequests - ModelRequestsAtSignal} after the signal";
        }

        foreach (var f in Failures)
        {
            yield return "  FAILED: " + f;
        }

        yield return Failures.Count == 0 ? "PASS" : "FAIL";
    }
}

/// <summary>The fault runs, shared by the short CI tests (tests/TokenMeter.FaultTests) and the long documented commands.</summary>
public static class FaultScenarios
{
    /// <summary>
    /// Metered SDK calls into PostgreSQL from <paramref name="callers"/> loops; after
    /// <paramref name="before"/> the PostgreSQL server is stopped for <paramref name="outage"/>,
    /// then started; the load runs <paramref name="after"/> more; then every record must arrive.
    /// </summary>
    public static async Task<OutageOutcome> StoreOutageAsync(PostgresServer server, TimeSpan before, TimeSpan outage, TimeSpan after, int callers, long maxCalls, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(server);
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
            await StartAgainAsync(server).ConfigureAwait(false);
            var result = await load.ConfigureAwait(false);
            log?.Invoke($"{clock.Elapsed.TotalSeconds:F1}s load done: {result.Calls} calls, {result.Failed} failed");

            var drain = Stopwatch.StartNew();
            var count = await SampleClient.WaitForRecordsAsync(connectionString, result.Calls, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            await SampleClient.WaitForEmptySpoolAsync(spool, TimeSpan.FromSeconds(60) - drain.Elapsed).ConfigureAwait(false);
            var drainTime = drain.Elapsed;
            await host.StopAsync().ConfigureAwait(false);
            await sampling.CancelAsync().ConfigureAwait(false);
            await sampler.ConfigureAwait(false);
            count = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
            return new OutageOutcome(outage, callers, result.Calls, result.Failed, result.Errors, count.Rows, count.DistinctIds, host.Spooled, host.Replayed,
                SampleClient.SpoolFileCount(spool), peak, drainTime, samples);
        }
        finally
        {
            DeleteFolder(spool);
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
        ArgumentNullException.ThrowIfNull(server);
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

            // The model's request count every 20 ms, to know how many calls the last flush window saw.
            var counts = new List<(TimeSpan At, long Count)>();
            var clock = Stopwatch.StartNew();
            using var stopCounting = new CancellationTokenSource();
            var counter = Task.Run(async () =>
            {
                while (!stopCounting.IsCancellationRequested)
                {
                    lock (counts)
                    {
                        counts.Add((clock.Elapsed, model.RequestCount));
                    }

                    try
                    {
                        await Task.Delay(20, stopCounting.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            });

            using var http = SampleClient.Create(sample.BaseAddress);
            using var stopLoad = new CancellationTokenSource();
            var loadStartedAt = clock.Elapsed;
            var load = LoadRunner.RunAsync(callers, 1_000_000, loadFor + TimeSpan.FromSeconds(60), ct => SampleClient.HintAsync(http, ct), stopLoad.Token);
            await Task.Delay(loadFor).ConfigureAwait(false);
            if (databaseDown)
            {
                // The first batch reaches the spool only after its store attempts failed (seconds on
                // a loaded machine): crash in the steady state, once a complete spool file holds
                // records (a file still being written is not one yet, and a restart deletes it).
                var spooling = await Eventually.PollAsync(_ => ValueTask.FromResult(CountSpoolLines(spool)), static lines => lines > 0, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50), transient: static ex => ex is IOException).ConfigureAwait(false);

                // Then one more flush window (the loss bound's steady state), not a wait for an event.
                await Task.Delay(flushInterval + ShutdownOutcome.StoreWriteAllowance).ConfigureAwait(false);
                log?.Invoke($"first spool file after {loadFor + spooling.Elapsed:g} of load");
            }

            var atSignal = model.RequestCount;
            var signalledAt = clock.Elapsed;
            var exit = Stopwatch.StartNew();
            sample.Signal(signal);
            var windowStart = signalledAt - ShutdownOutcome.LossWindow(flushInterval, databaseDown);
            long beforeWindow;
            lock (counts)
            {
                beforeWindow = counts.LastOrDefault(c => c.At <= windowStart).Count;
            }

            log?.Invoke($"sent signal {signal} after {atSignal} model calls");
            var exited = await sample.WaitForExitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            var exitTime = exit.Elapsed;
            await stopLoad.CancelAsync().ConfigureAwait(false);
            var result = await load.ConfigureAwait(false);
            await stopCounting.CancelAsync().ConfigureAwait(false);
            await counter.ConfigureAwait(false);
            var modelRequests = model.RequestCount;
            log?.Invoke($"exited={exited} in {exitTime.TotalSeconds:F1}s; callers ok {result.Ok}, failed {result.Failed}; model requests {modelRequests}");

            long spooledLines = CountSpoolLines(spool);
            if (databaseDown)
            {
                await StartAgainAsync(server).ConfigureAwait(false);
                log?.Invoke($"PostgreSQL started; {spooledLines} records in the spool");
            }

            var afterExit = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
            var afterRestart = afterExit;
            var spoolFiles = SampleClient.SpoolFileCount(spool);
            if (restart)
            {
                await using var again = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
                afterRestart = await SampleClient.WaitForRecordsAsync(connectionString, afterExit.Rows + spooledLines, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                await SampleClient.WaitForEmptySpoolAsync(spool, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                afterRestart = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
                spoolFiles = SampleClient.SpoolFileCount(spool);
                again.Signal(SampleProcess.SigTerm);
                await again.WaitForExitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }

            return new ShutdownOutcome(signal, databaseDown, restart, callers, flushInterval, modelRequests, atSignal, atSignal - beforeWindow,
                result.Ok, result.Failed, result.Ok / Math.Max(0.001, (signalledAt - loadStartedAt).TotalSeconds), exited, exited ? sample.ExitCode : -1, exitTime,
                afterExit.Rows, spooledLines, afterRestart.Rows, afterRestart.DistinctIds, spoolFiles, sample.Output);
        }
        finally
        {
            DeleteFolder(spool);
        }
    }

    /// <summary>
    /// Starts the stopped server again and forgets this process's pooled connections: the stop
    /// terminated them, and the next scenario must not be handed a dead one.
    /// </summary>
    internal static async Task StartAgainAsync(PostgresServer server)
    {
        await server.StartAgainAsync().ConfigureAwait(false);
        NpgsqlConnection.ClearAllPools();
    }

    internal static void DeleteFolder(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
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
