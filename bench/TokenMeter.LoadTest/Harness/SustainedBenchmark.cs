using System.Diagnostics;
using Npgsql;
using OpenAI.Chat;
using TokenMeter.Writing;
using TokenMeter.Testing.Postgres;
using TokenMeter.Testing.Scenarios;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// <c>sustained</c>: metered SDK calls as fast as the machine allows (fake model answering at once)
/// from a <see cref="MeteredHost"/> (AddTokenMeter + AddPostgresStore + AddOpenAIClient, the
/// writer's defaults) for a fixed time, sampling the writer every second; then the host is stopped
/// (the writer drains) and the store is counted against the calls made.
/// </summary>
public static class SustainedBenchmark
{
    /// <param name="LiveHeap">The managed heap after a full collection, taken at each minute's last second (0 in the other seconds).</param>
    public sealed record Second(int At, long Calls, long Written, long Queue, long WorkingSet, long ManagedHeap, long PostgresAnon, long LiveHeap);

    public sealed record Outcome(
        long Calls,
        long CallerErrors,
        IReadOnlyList<string> Errors,
        double LoadSeconds,
        double DrainSeconds,
        long Rows,
        long DistinctIds,
        long Spooled,
        long FailedBatches,
        long WarmUpFailedBatches,
        long PeakQueue,
        IReadOnlyList<Second> Series,
        double HarnessCpuSeconds,
        double PostgresCpuSeconds,
        IReadOnlyCollection<string> Warnings);

    public static async Task<Outcome> RunAsync(TimeSpan duration, int callers, Action<string> log)
    {
        await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
        var connectionString = await server.CreateDatabaseAsync("sustained").ConfigureAwait(false);
        var postmaster = await PostmasterPidAsync(connectionString).ConfigureAwait(false);
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        try
        {
            await using var model = await HomeworkModel.StartAsync(TimeSpan.Zero).ConfigureAwait(false);
            var defaults = new UsageWriterOptions();
            await using var host = await MeteredHost.StartAsync(model.Endpoint, connectionString, spool, defaults.FlushInterval, defaults.BatchSize).ConfigureAwait(false);
            log($"writer: batch {defaults.BatchSize}, flush {defaults.FlushInterval.TotalSeconds:F1} s, queue capacity {defaults.QueueCapacity}; fake model answers at once; {callers} callers");
            List<ChatMessage> messages = [new UserChatMessage("Give me a hint for 2x + 3 = 7.")];

            // Warm-up, not counted: its records are in the store before the measured run starts.
            var warm = await LoadRunner.RunAsync(callers, long.MaxValue, TimeSpan.FromSeconds(2), async _ => await host.Chat.CompleteChatAsync(messages).ConfigureAwait(false)).ConfigureAwait(false);
            await SampleClient.WaitForRecordsAsync(connectionString, warm.Calls, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            await TruncateAsync(connectionString).ConfigureAwait(false);
            model.Reset();

            // Failed (spooled) batches of the warm-up: the first one may meet the store still installing its schema.
            var spooledAtStart = host.Spooled;
            var failedAtStart = host.FailedBatches;

            long calls = 0;
            long writtenAtStart = host.Written;
            var series = new List<Second>();
            var me = Process.GetCurrentProcess();
            me.Refresh();
            var cpuBefore = me.TotalProcessorTime.TotalSeconds;
            var pgBefore = ProcessCpu.ChildrenOf(postmaster);
            var clock = Stopwatch.StartNew();
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
                var at = 0;
                try
                {
                    while (await timer.WaitForNextTickAsync(sampling.Token).ConfigureAwait(false))
                    {
                        at++;
                        // Once a minute, what is still reachable (a full, blocking collection: one per minute):
                        // the heap between collections grows and shrinks with the collector's budget, not with what is kept.
                        var live = at % 60 == 0 ? GC.GetTotalMemory(forceFullCollection: true) : 0;
                        series.Add(new Second(at, Interlocked.Read(ref calls), host.Written - writtenAtStart, host.QueueLength(), Environment.WorkingSet, GC.GetTotalMemory(false), AnonymousMemoryOf(postmaster), live));

                        // The fake model keeps every request; forget them so the harness's memory stays flat.
                        model.Reset();
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });

            // Calls are counted, their latencies not kept (they would grow this process by 8 bytes a call).
            var load = await LoadRunner.RunCountingAsync(callers, long.MaxValue, duration, async _ =>
            {
                try
                {
                    await host.Chat.CompleteChatAsync(messages).ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Increment(ref calls);
                }
            }).ConfigureAwait(false);
            var loadSeconds = clock.Elapsed.TotalSeconds;
            await sampling.CancelAsync().ConfigureAwait(false);
            await sampler.ConfigureAwait(false);
            me.Refresh();
            var harnessCpu = me.TotalProcessorTime.TotalSeconds - cpuBefore;
            var pgCpu = ProcessCpu.ChildrenOf(postmaster) - pgBefore;
            log($"load done after {loadSeconds:F1} s: {load.Calls} calls ({load.Failed} failed); queue {host.QueueLength()}; stopping the host (the writer drains)");

            var drain = Stopwatch.StartNew();
            await host.StopAsync().ConfigureAwait(false);
            var drainSeconds = drain.Elapsed.TotalSeconds;
            var count = await SampleClient.CountRecordsAsync(connectionString).ConfigureAwait(false);
            return new Outcome(load.Calls, load.Failed, load.Errors, loadSeconds, drainSeconds, count.Rows, count.DistinctIds, host.Spooled - spooledAtStart, host.FailedBatches - failedAtStart, failedAtStart,
                series.Count == 0 ? 0 : series.Max(s => s.Queue), series, harnessCpu, pgCpu, [.. host.Warnings]);
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

    /// <summary>The PostgreSQL postmaster's pid: the parent of one of its backends (for CPU figures; 0 when unknown).</summary>
    public static async Task<int> PostmasterPidAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
        var backend = (int)(await command.ExecuteScalarAsync().ConfigureAwait(false))!;
        try
        {
            foreach (var line in await File.ReadAllLinesAsync($"/proc/{backend}/status").ConfigureAwait(false))
            {
                if (line.StartsWith("PPid:", StringComparison.Ordinal))
                {
                    return int.Parse(line["PPid:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }

    /// <summary>Private (anonymous) resident memory of the postmaster and its children, in bytes: what the server holds beyond its shared buffers.</summary>
    public static long AnonymousMemoryOf(int postmaster)
    {
        if (postmaster == 0)
        {
            return 0;
        }

        long total = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                long anon = 0;
                var parent = 0;
                foreach (var line in File.ReadLines(Path.Combine(dir, "status")))
                {
                    if (line.StartsWith("PPid:", StringComparison.Ordinal))
                    {
                        parent = int.Parse(line["PPid:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    }
                    else if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                    {
                        anon = long.Parse(line["RssAnon:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
                    }
                }

                if (pid == postmaster || parent == postmaster)
                {
                    total += anon;
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

    private static async Task TruncateAsync(string connectionString)
    {
        // Rollups keep the warm-up's calls; only the raw table is counted.
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand("TRUNCATE user_api_usage", connection);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }
}
