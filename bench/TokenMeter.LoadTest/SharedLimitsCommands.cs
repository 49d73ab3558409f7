using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Budgets;
using TokenMeter.LoadTest.Harness;
using TokenMeter.RateLimits;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;
using TokenMeter.Testing.Scenarios;
using static TokenMeter.LoadTest.Commands;

namespace TokenMeter.LoadTest;

/// <summary>
/// <c>shared-limits [seconds-per-run=5] [burst=60]</c>: (1) the latency a budget check and a
/// requests+tokens rate-limit check on PostgreSQL (the call's estimate included) add to a metered
/// call, against the same call, attributed to the same user, from a host of the app without budgets
/// and rate limits, at 1 / 16 / 64 callers (p50 and p99, side by side in one run: rounds of A B B A
/// phases; CPU, PostgreSQL's share of it, and allocation per call),
/// with headroom slices (the default) and with every check exact in the database
/// (<c>LocalSlices = false</c>, a second host on the same database), with a model that answers at
/// once (the box saturated at 64 callers) and with one that answers after 20 ms; (2) a burst of parallel
/// calls for one student at a budget, spread round-robin over three instances of the sample.
/// </summary>
internal static class SharedLimitsCommands
{
    public const string Help = """
          shared-limits [seconds=5] [burst=60] [--callers 1,16,64] [--slices-only] [--one-student-only] [--allocation-types] [--statements]
                                                    added latency of budget + rate-limit checks on PostgreSQL at 1/16/64 callers; three-instance budget burst (burst 0: none)
                                                    --slices-only skips the exact checks and the 20 ms model's table;
                                                    --one-student-only skips the 1,000-students spread; --probe N: N checks + settles alone, one after another (allocation and CPU per call;
                                                    with --allocation-types, the types allocated, from the runtime's allocation samples);
                                                    --statements prints PostgreSQL's costliest statements per limited call (pg_stat_statements)
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var flags = args.Where(a => a.StartsWith("--", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        string? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var positional = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        var seconds = Seconds(positional, 0, 5);
        var burst = Int(positional, 1, 60);
        var callerCounts = Option("--callers") is { } counts ? counts.Split(',').Select(c => int.Parse(c, System.Globalization.CultureInfo.InvariantCulture)).ToArray() : [1, 16, 64];
        using var operations = CountDatabaseOperations();
        var statements = flags.Contains("--statements");
        await using var server = await PostgresServer.StartAsync(statements ? ["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all", "pg_stat_statements.track_planning=on"] : null).ConfigureAwait(false);
        await using var model = await FakeOpenAIServer.StartAsync().ConfigureAwait(false);
        model.DefaultReply = FakeReply.WithUsage(100, 40);
        var connectionString = await server.CreateDatabaseAsync("limits").ConfigureAwait(false);
        postmaster = await SustainedBenchmark.PostmasterPidAsync(connectionString).ConfigureAwait(false);
        using var host = await StartHostAsync(model.Endpoint, connectionString, slices: true).ConfigureAwait(false);
        using var exactHost = await StartHostAsync(model.Endpoint, connectionString, slices: false).ConfigureAwait(false);

        // The same call with neither: a host of the same app on the same database without budgets and rate limits.
        using var plainHost = await StartHostAsync(model.Endpoint, connectionString, slices: null).ConfigureAwait(false);
        var plainChat = plainHost.Services.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o-mini");
        var estimator = host.Services.GetRequiredService<UsageEstimator>();
        await SetDefaultBudgetWhenReadyAsync(host.Services.GetRequiredService<IBudgetStore>()).ConfigureAwait(false);
        await SetDefaultBudgetWhenReadyAsync(exactHost.Services.GetRequiredService<IBudgetStore>()).ConfigureAwait(false);
        ChatMessage[] messages = [new UserChatMessage("Give me a hint for 2x + 3 = 7")];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 400 };

        // One student per caller calling back to back (each window holds every call of the last
        // minute: thousands of rows), or each call for the next of 1,000 students (a window holds a
        // student's few calls, as in a class using the product). Both calls are attributed to the
        // student (the records of either carry the user; the store keeps per-user rollups for both).
        var spread = false;
        var next = 0;
        var callerSlots = Math.Max(64, callerCounts.Max());
        var checks = Enumerable.Range(0, callerSlots).Select(_ => new List<double>()).ToArray();
        var failedOpen = 0;
        var students = Enumerable.Range(0, 1000).Select(i => "student-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var benchers = Enumerable.Range(0, callerSlots).Select(i => "bench-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var exactStudents = students.Select(u => "exact-" + u).ToArray();
        var exactBenchers = benchers.Select(u => "exact-" + u).ToArray();
        string UserOf(int caller, bool exact) => spread
            ? (exact ? exactStudents : students)[(uint)Interlocked.Increment(ref next) % 1000]
            : (exact ? exactBenchers : benchers)[caller];
        async Task Plain(int caller)
        {
            using (Attribution.UsageScope.Begin(new Attribution.UsageContext { UserId = UserOf(caller, exact: false) }))
            {
                await plainChat.CompleteChatAsync(messages, options).ConfigureAwait(false);
            }
        }

        var slicedHost = new LimitedHost(host);
        var exactChecked = new LimitedHost(exactHost);
        Task Sliced(int caller) => Limited(slicedHost, UserOf(caller, exact: false), caller);
        Task Exact(int caller) => Limited(exactChecked, UserOf(caller, exact: true), caller);
        async Task Limited(LimitedHost on, string user, int caller)
        {
            // The call's worst case (the prompt through the tokenizer), then both rate limits and the
            // budget in one step (one round trip), as the sample's filters do.
            var started = Stopwatch.GetTimestamp();
            var estimate = estimator.EstimateChat("gpt-4o-mini", messages, 400);
            await using var rate = await on.Limiter.CheckWithBudgetAsync(on.PartitionKeys.GetOrAdd(user, static u => "user:" + u), user, estimate, on.Guard).ConfigureAwait(false);
            checks[caller].Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            await using var budget = rate.Budget;
            if (!rate.IsAllowed || budget is not { IsAllowed: true })
            {
                throw new InvalidOperationException("refused in the latency run");
            }

            if (budget.Status is null)
            {
                // Let through without a status: the check failed and the fail policy (open) let it through.
                Interlocked.Increment(ref failedOpen);
            }

            using (Attribution.UsageScope.Begin(new Attribution.UsageContext { UserId = user }))
            {
                await on.Chat.CompleteChatAsync(messages, options).ConfigureAwait(false);
            }
        }

        using var sampler = flags.Contains("--allocation-types") ? new AllocationSampler() : null;
        if (Option("--probe") is { } probeCalls)
        {
            // The estimate, the check and its settle alone, one call after another (no model call): the bytes
            // allocated (every thread, the settles' background work included) and the CPU per call.
            await ProbeAsync(slicedHost, estimator, messages, int.Parse(probeCalls, System.Globalization.CultureInfo.InvariantCulture), sampler).ConfigureAwait(false);
            return 0;
        }

        Print($"added latency of a budget check + requests and tokens rate-limit checks (PostgreSQL store) per metered call, fake model on loopback answering at once (at 64 callers the box is saturated: the added figure is then mostly the added CPU, queued):");
        Print($"slices: {Rounds} rounds of neither, checked, checked, neither ({seconds.TotalSeconds / 2:F1} s each); added = median over the rounds of (mean of its checked phases - mean of its neither phases); CPU per call over all phases of each side. exact: one phase of {seconds.TotalSeconds:F0} s against the mean of the level's neither phases.");
        Print(TableHeader);
        await MeasureAsync(Plain, 4, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        await MeasureAsync(Sliced, 4, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        await MeasureAsync(Exact, 4, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        var slicesOnly = flags.Contains("--slices-only");
        foreach (var spreadOverStudents in flags.Contains("--one-student-only") ? [false] : new[] { false, true })
        {
            spread = spreadOverStudents;
            Print(spread ? "each call for the next of 1,000 students:" : "one student per caller, back to back:");
            foreach (var callers in callerCounts)
            {
                await MeasureLevelAsync(callers, withExact: !slicesOnly).ConfigureAwait(false);
            }
        }

        // The same, with a model that answers after 20 ms (as the sample's benchmark): the box is
        // not saturated at 64 callers, so the added figure is the checks' own latency.
        model.DefaultReply = FakeReply.WithUsage(100, 40) with { Delay = TimeSpan.FromMilliseconds(20) };
        spread = false;
        if (!slicesOnly)
        {
            Print(string.Empty);
            Print("the same with a model that answers after 20 ms (the box not saturated), slices, one student per caller:");
            Print(TableHeader);
            foreach (var callers in callerCounts)
            {
                await MeasureLevelAsync(callers, withExact: false).ConfigureAwait(false);
            }
        }

        model.DefaultReply = FakeReply.WithUsage(100, 40);

        async Task MeasureLevelAsync(int callers, bool withExact)
        {
            var phase = seconds / 2;
            var plains = new List<Phase>();
            var sliced = new List<Phase>();
            var addedP50 = new List<double>();
            var addedP99 = new List<double>();
            foreach (var list in checks)
            {
                list.Clear();
            }

            var operations = 0L;
            if (statements)
            {
                await StatementsAsync(connectionString, null).ConfigureAwait(false);
            }

            for (var round = 0; round < Rounds; round++)
            {
                // A B B A: a drift within the round weighs on both sides alike.
                var a1 = await MeasureAsync(Plain, callers, phase).ConfigureAwait(false);
                var operationsBefore = Interlocked.Read(ref databaseOperations);
                var b1 = await MeasureAsync(Sliced, callers, phase).ConfigureAwait(false);
                var b2 = await MeasureAsync(Sliced, callers, phase).ConfigureAwait(false);
                operations += Interlocked.Read(ref databaseOperations) - operationsBefore;
                var a2 = await MeasureAsync(Plain, callers, phase).ConfigureAwait(false);
                plains.AddRange([a1, a2]);
                sliced.AddRange([b1, b2]);
                addedP50.Add(((b1.P50 + b2.P50) - (a1.P50 + a2.P50)) / 2);
                addedP99.Add(((b1.P99 + b2.P99) - (a1.P99 + a2.P99)) / 2);
            }

            var slicedCalls = checks.Sum(c => c.Count);
            var check = Percentiles(checks.SelectMany(c => c));
            var plain = Phase.Pooled(plains);
            var limited = Phase.Pooled(sliced);
            Print($"| {callers} | slices | {plain.P50:F2} ms | {plain.P99:F2} ms | {limited.P50:F2} ms | {limited.P99:F2} ms | {Median(addedP50):F2} ms ({string.Join(" / ", addedP50.Select(a => a.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}) | {Median(addedP99):F2} ms | {check.P50:F2} ms | {check.P99:F2} ms | {(double)operations / Math.Max(1, slicedCalls):F3} | {limited.CpuUs - plain.CpuUs:F0} µs (PostgreSQL {limited.ServerCpuUs - plain.ServerCpuUs:F0}) | {limited.AllocatedBytes - plain.AllocatedBytes:F0} B |");
            if (statements)
            {
                await StatementsAsync(connectionString, slicedCalls).ConfigureAwait(false);
            }

            if (!withExact)
            {
                return;
            }

            foreach (var list in checks)
            {
                list.Clear();
            }

            var before = Interlocked.Read(ref databaseOperations);
            var exact = await MeasureAsync(Exact, callers, seconds).ConfigureAwait(false);
            var exactCalls = checks.Sum(c => c.Count);
            var exactCheck = Percentiles(checks.SelectMany(c => c));
            Print($"| {callers} | exact | {plain.P50:F2} ms | {plain.P99:F2} ms | {exact.P50:F2} ms | {exact.P99:F2} ms | {exact.P50 - plain.P50:F2} ms | {exact.P99 - plain.P99:F2} ms | {exactCheck.P50:F2} ms | {exactCheck.P99:F2} ms | {(double)(Interlocked.Read(ref databaseOperations) - before) / Math.Max(1, exactCalls):F3} | {exact.CpuUs - plain.CpuUs:F0} µs (PostgreSQL {exact.ServerCpuUs - plain.ServerCpuUs:F0}) | {exact.AllocatedBytes - plain.AllocatedBytes:F0} B |");
        }

        Print($"checks that failed and were let through by the fail policy: {failedOpen}");
        if (burst <= 0)
        {
            return 0;
        }

        Print(string.Empty);
        Print($"three-instance budget burst: {burst} parallel /api/hint calls for one student, round-robin over three sample instances on one PostgreSQL:");
        await using var cluster = await SampleCluster.StartAsync(server, 3, ClusterSettings.With(), Print).ConfigureAwait(false);
        using var student = await cluster.RegisterAsync().ConfigureAwait(false);
        var limit = SampleCluster.CostPerCallUsd * 7.5m;
        await cluster.SetBudgetAsync(0, student.UserId, limit).ConfigureAwait(false);
        var answers = await Task.WhenAll(Enumerable.Range(0, burst).Select(student.HintAsync)).ConfigureAwait(false);
        var ok = answers.Count(a => a.Status == HttpStatusCode.OK);
        var refused = answers.Count(a => a.Status == HttpStatusCode.TooManyRequests);
        var stored = await cluster.WaitForStoredAsync(student.UserId, ok).ConfigureAwait(false);
        var overshoot = stored.SpendUsd - limit;
        Print($"| limit | allowed | refused | other | model calls | stored records | stored spend | overshoot USD | overshoot calls |");
        Print($"|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        Print($"| {limit} USD | {ok} | {refused} | {burst - ok - refused} | {cluster.Model.RequestCount} | {stored.Rows} | {stored.SpendUsd} USD | {overshoot} | {overshoot / SampleCluster.CostPerCallUsd:F2} |");
        var pass = stored.SpendUsd <= limit + SampleCluster.CostPerCallUsd && ok == stored.Rows && ok == cluster.Model.RequestCount && ok + refused == burst;
        Print(pass ? "PASS" : "FAIL");
        return pass ? 0 : 1;
    }

    /// <summary>The store installs its schema in the background after start: the first write waits for it (at most a minute).</summary>
    private static async Task SetDefaultBudgetWhenReadyAsync(IBudgetStore budgets)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await budgets.SetDefaultBudgetAsync(new BudgetLimit(1_000_000m, null)).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is Npgsql.PostgresException { SqlState: "42P01" } or TokenMeter.UsageStoreNotReadyException && waited.Elapsed < TimeSpan.FromMinutes(1))
            {
                await Task.Delay(200).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Round trips to PostgreSQL made by this process (commands and batches, Npgsql's
    /// <c>db.client.operation.duration</c>): per limited call, checks, claims, settles, adjustments and the
    /// writer's batches together; a figure the load on the box does not change.
    /// </summary>
    private static long databaseOperations;

    private static MeterListener CountDatabaseOperations()
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Npgsql" && instrument.Name == "db.client.operation.duration")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref databaseOperations));
        listener.Start();
        return listener;
    }

    /// <summary>The PostgreSQL server's postmaster (its backends' CPU counts in a run's CPU per call).</summary>
    private static int postmaster;

    /// <summary>CPU seconds so far of this process (callers, hosts, fake model) and of the PostgreSQL server.</summary>
    private static double CpuSeconds()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalSeconds + ProcessCpu.ChildrenOf(postmaster);
    }

    /// <summary>Rounds of A B B A per caller count and kind of check.</summary>
    private const int Rounds = 3;

    private const string TableHeader = """
        | callers | checks | neither p50 | neither p99 | budget + rate limits p50 | p99 | added p50 (per round) | added p99 | the check alone p50 | p99 | PostgreSQL round trips per call | added CPU per call (this process + PostgreSQL) | added allocation per call (this process) |
        |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
        """;

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>
    /// One phase's calls: their latencies, p50 and p99, the CPU (this process + PostgreSQL, and
    /// PostgreSQL's alone) per call in microseconds, and the bytes this process allocated per call
    /// (every thread: callers, hosts, writers, fake model), a figure the load on the box does not change.
    /// </summary>
    private sealed record Phase(double[] Sorted, double CpuSeconds, double ServerCpuSeconds, long Allocated)
    {
        public double P50 => Sorted.Length == 0 ? 0 : Sorted[Sorted.Length / 2];

        public double P99 => Sorted.Length == 0 ? 0 : Sorted[Math.Min(Sorted.Length - 1, (int)(Sorted.Length * 0.99))];

        public double CpuUs => CpuSeconds * 1e6 / Math.Max(1, Sorted.Length);

        public double ServerCpuUs => ServerCpuSeconds * 1e6 / Math.Max(1, Sorted.Length);

        public double AllocatedBytes => (double)Allocated / Math.Max(1, Sorted.Length);

        /// <summary>Several phases as one: every call's latency, and the CPU and allocation of all of them.</summary>
        public static Phase Pooled(IEnumerable<Phase> phases) =>
            new([.. phases.SelectMany(p => p.Sorted).Order()], phases.Sum(p => p.CpuSeconds), phases.Sum(p => p.ServerCpuSeconds), phases.Sum(p => p.Allocated));
    }

    /// <summary>Runs the callers for the duration.</summary>
    private static async Task<Phase> MeasureAsync(Func<int, Task> call, int callers, TimeSpan duration)
    {
        var samples = new List<double>[callers];
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var cpu = CpuSeconds();
        var server = ProcessCpu.ChildrenOf(postmaster);
        var stop = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async c =>
        {
            var mine = samples[c] = [];
            while (stop.Elapsed < duration)
            {
                var started = Stopwatch.GetTimestamp();
                await call(c).ConfigureAwait(false);
                mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        })).ConfigureAwait(false);
        return new Phase([.. samples.SelectMany(s => s).Order()], CpuSeconds() - cpu, ProcessCpu.ChildrenOf(postmaster) - server, GC.GetTotalAllocatedBytes(precise: true) - allocated);
    }

    private static (double P50, double P99) Percentiles(IEnumerable<double> samples)
    {
        var all = samples.Order().ToArray();
        return all.Length == 0 ? (0, 0) : (all[all.Length / 2], all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))]);
    }

    /// <summary>PostgreSQL's statements by total time per limited call since the last reset (<c>pg_stat_statements</c>), then a reset; null calls: reset only.</summary>
    private static async Task StatementsAsync(string connectionString, long? calls)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using (var create = new Npgsql.NpgsqlCommand("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", connection))
        {
            await create.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        if (calls is { } n)
        {
            await using var read = new Npgsql.NpgsqlCommand("SELECT calls, total_exec_time, total_plan_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 8", connection);
            await using var reader = await read.ExecuteReaderAsync().ConfigureAwait(false);
            Print("  PostgreSQL statements (pg_stat_statements), time per limited call: executions | exec+plan µs per call | ms per execution | of which planning | statement");
            while (await reader.ReadAsync().ConfigureAwait(false))
            {
                var total = reader.GetDouble(1) + reader.GetDouble(2);
                Print($"    {reader.GetInt64(0),7} | {total * 1000 / n,7:F2} µs | {total / Math.Max(1, reader.GetInt64(0)),7:F3} ms | {reader.GetDouble(2) / Math.Max(1, reader.GetInt64(0)),6:F3} ms | {reader.GetString(3)}");
            }
        }

        await using var reset = new Npgsql.NpgsqlCommand("SELECT pg_stat_statements_reset()", connection);
        await reset.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private static async Task ProbeAsync(LimitedHost on, UsageEstimator estimator, ChatMessage[] messages, int calls, AllocationSampler? sampler)
    {
        const string user = "probe-1";
        const string partition = "user:" + user;
        for (var round = 0; round < 4; round++)
        {
            sampler?.Take();
            var bytes = GC.GetTotalAllocatedBytes(precise: true);
            var cpu = CpuSeconds();
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < calls; i++)
            {
                var estimate = estimator.EstimateChat("gpt-4o-mini", messages, 400);
                var rate = await on.Limiter.CheckWithBudgetAsync(partition, user, estimate, on.Guard).ConfigureAwait(false);
                await rate.Budget!.DisposeAsync().ConfigureAwait(false);
                await rate.DisposeAsync().ConfigureAwait(false);
            }

            var elapsed = Stopwatch.GetElapsedTime(started);
            Print($"probe round {round}: {calls} estimates + checks + settles one after another: {(double)(GC.GetTotalAllocatedBytes(precise: true) - bytes) / calls:F0} B allocated per call (every thread), CPU {(CpuSeconds() - cpu) * 1e6 / calls:F2} µs per call (this process + PostgreSQL), wall {elapsed.TotalMicroseconds / calls:F2} µs");
        }

        if (sampler is not null)
        {
            foreach (var line in AllocationSampler.Added(sampler.Take(), calls, [], 1, 30))
            {
                Print(line);
            }
        }

        var alone = GC.GetTotalAllocatedBytes(precise: true);
        var aloneStarted = Stopwatch.GetTimestamp();
        for (var i = 0; i < calls; i++)
        {
            estimator.EstimateChat("gpt-4o-mini", messages, 400);
        }

        Print($"the estimate alone: {(double)(GC.GetTotalAllocatedBytes(precise: true) - alone) / calls:F0} B and {Stopwatch.GetElapsedTime(aloneStarted).TotalMicroseconds / calls:F2} µs (wall) per call");
        aloneStarted = Stopwatch.GetTimestamp();
        for (var i = 0; i < calls; i++)
        {
            UsageEstimator.CountTokens(messages);
        }

        Print($"of which counting the prompt's tokens: {Stopwatch.GetElapsedTime(aloneStarted).TotalMicroseconds / calls:F2} µs (wall) per call");
    }

    /// <summary>A host with budgets and rate limits, and what a call resolves from it (once, as an app's filters do).</summary>
    private sealed class LimitedHost(IHost host)
    {
        public BudgetGuard Guard { get; } = host.Services.GetRequiredService<BudgetGuard>();

        public UserRateLimiter Limiter { get; } = host.Services.GetRequiredService<UserRateLimiter>();

        public ChatClient Chat { get; } = host.Services.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o-mini");

        /// <summary>The requests partition of each user (an app builds it from the signed-in user's id).</summary>
        public System.Collections.Concurrent.ConcurrentDictionary<string, string> PartitionKeys { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>A host of the app on the database: with budgets and rate limits (headroom slices or exact checks), or (null) neither.</summary>
    private static async Task<IHost> StartHostAsync(Uri modelEndpoint, string connectionString, bool? slices)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Writer:SpoolDirectory"] = Directory.CreateTempSubdirectory("tokenmeter-limits-").FullName,
        });
        var tokenMeter = builder.Services.AddTokenMeter()
            .AddPostgresStore(connectionString, o => o.LocalSlices = slices ?? true);
        if (slices is not null)
        {
            tokenMeter.AddBudgets()
                .AddRateLimits(o =>
                {
                    o.RequestsPerMinute = 1_000_000;
                    o.TokensPerMinute = 1_000_000_000;
                });
        }

        tokenMeter.AddOpenAIClient(o =>
        {
            o.Endpoint = modelEndpoint;
            o.ApiKey = "load-test-key";
            o.MaxRetries = 0;
        });
        var host = builder.Build();
        await host.StartAsync().ConfigureAwait(false);
        return host;
    }
}
