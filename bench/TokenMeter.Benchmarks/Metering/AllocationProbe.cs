using System.Diagnostics;
using System.Globalization;

namespace TokenMeter.Benchmarks.Metering;

/// <summary>
/// Metering overhead outside BenchmarkDotNet, as one command that prints every figure the
/// results table needs: <c>dotnet run -c Release --project bench/TokenMeter.Benchmarks -- metering-probe [calls]</c>.
/// <list type="number">
/// <item>Latency over loopback: metered and unmetered calls alternate call by call (so background
/// load hits both alike); p50 and p99 of each and their ratios, for a plain call, a whole stream
/// and a stream's first chunk. Both clients use the same HttpClient; a third, bare HttpClient
/// shows what IHttpClientFactory's handlers cost on their own.</item>
/// <item>Allocation per call (all threads, so the writer's share counts too), metered minus unmetered.</item>
/// <item>In-process (no socket, replies recorded from the fake server): CPU time of the whole
/// process per call (caller and writer threads) and allocation per call, metered minus
/// unmetered. Network noise is gone, so this is the repeatable figure of what metering costs.</item>
/// </list>
/// </summary>
internal static class AllocationProbe
{
    public static int Run(string[] args)
    {
        var calls = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3000;
        Console.WriteLine(FormattableString.Invariant($"metering-probe {calls} calls per client, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}, {Environment.ProcessorCount} cores"));
        var bench = new MeteringOverheadBenchmarks();
        bench.Setup();
        try
        {
            var clients = new (string Name, Func<Task> Call)[]
            {
                ("plain bare", bench.PlainBare),
                ("plain unmetered", bench.PlainUnmetered),
                ("plain metered", bench.PlainMetered),
                ("stream unmetered", bench.StreamUnmetered),
                ("stream metered", bench.StreamMetered),
                ("in-proc unmetered", bench.CannedUnmetered),
                ("in-proc metered", bench.CannedMetered),
                ("in-proc stream unm", bench.CannedStreamUnmetered),
                ("in-proc stream met", bench.CannedStreamMetered),
            };
            // Warm up until the JIT has tiered everything up: two rounds with a pause between, so
            // that no client is measured on unoptimised code (the tiering queue is slow on a busy box).
            for (var round = 0; round < 2; round++)
            {
                foreach (var (_, call) in clients)
                {
                    for (var i = 0; i < Math.Max(500, calls / 2); i++)
                    {
                        call().GetAwaiter().GetResult();
                    }
                }

                Thread.Sleep(1000);
            }

            Console.WriteLine();
            Console.WriteLine("1. latency over loopback, interleaved call by call (same HttpClient for both clients)");
            foreach (var (name, unmetered, metered) in new (string, Func<Task>, Func<Task>)[]
            {
                ("plain", bench.PlainUnmetered, bench.PlainMetered),
                ("stream whole", bench.StreamUnmetered, bench.StreamMetered),
                ("stream first chunk", bench.FirstChunkUnmetered, bench.FirstChunkMetered),
            })
            {
                var (u, m) = Interleave(unmetered, metered, calls);
                Console.WriteLine(FormattableString.Invariant(
                    $"   {name,-19} p50 unmetered {P(u, 50),7:F1} us  metered {P(m, 50),7:F1} us  ratio {P(m, 50) / P(u, 50):F3}   p99 unmetered {P(u, 99),7:F1} us  metered {P(m, 99),7:F1} us  ratio {P(m, 99) / P(u, 99):F3}"));
            }

            var (bare, unmeteredFactory) = Interleave(bench.PlainBare, bench.PlainUnmetered, calls);
            Console.WriteLine(FormattableString.Invariant(
                $"   (plain, unmetered: bare HttpClient p50 {P(bare, 50):F1} us vs IHttpClientFactory's HttpClient {P(unmeteredFactory, 50):F1} us, ratio {P(unmeteredFactory, 50) / P(bare, 50):F3}; not metering)"));

            Console.WriteLine();
            Console.WriteLine("2. allocation per call over loopback, all threads (fake server included; the difference is metering's)");
            Allocation("plain", bench.PlainUnmetered, bench.PlainMetered, calls, bench.WaitForWriter);
            Allocation("stream whole", bench.StreamUnmetered, bench.StreamMetered, calls, bench.WaitForWriter);

            Console.WriteLine();
            Console.WriteLine("3. in-process (no socket): process CPU time and allocation per call, all threads");
            InProcess("plain", bench.CannedUnmetered, bench.CannedMetered, calls, bench.WaitForWriter);
            InProcess("stream whole", bench.CannedStreamUnmetered, bench.CannedStreamMetered, calls, bench.WaitForWriter);
        }
        finally
        {
            bench.Cleanup();
        }

        return 0;
    }

    /// <summary>Runs one client in a loop, for a profiler: <c>metering-loop in-proc-metered 200000</c>.</summary>
    public static int Loop(string[] args)
    {
        var bench = new MeteringOverheadBenchmarks();
        bench.Setup();
        try
        {
            Func<Task> call = args[0] switch
            {
                "plain-unmetered" => bench.PlainUnmetered,
                "plain-metered" => bench.PlainMetered,
                "in-proc-unmetered" => bench.CannedUnmetered,
                "in-proc-metered" => bench.CannedMetered,
                "in-proc-stream-unmetered" => bench.CannedStreamUnmetered,
                "in-proc-stream-metered" => bench.CannedStreamMetered,
                _ => throw new ArgumentException("unknown client " + args[0]),
            };
            var calls = int.Parse(args[1], CultureInfo.InvariantCulture);

            // Long enough for the writer's methods (called once a batch) to reach optimised code too.
            for (var round = 0; round < 3; round++)
            {
                for (var i = 0; i < 10_000; i++)
                {
                    call().GetAwaiter().GetResult();
                }

                Thread.Sleep(1000);
            }

            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < calls; i++)
            {
                call().GetAwaiter().GetResult();
            }

            Console.WriteLine(FormattableString.Invariant($"{args[0]}: {Stopwatch.GetElapsedTime(start).TotalMicroseconds / calls:F2} us/call"));
        }
        finally
        {
            bench.Cleanup();
        }

        return 0;
    }

    private static (double[] A, double[] B) Interleave(Func<Task> a, Func<Task> b, int calls)
    {
        var ta = new double[calls];
        var tb = new double[calls];
        for (var i = 0; i < calls; i++)
        {
            // Alternate which goes first, so neither always follows the other's wake-ups.
            if ((i & 1) == 0)
            {
                ta[i] = Time(a);
                tb[i] = Time(b);
            }
            else
            {
                tb[i] = Time(b);
                ta[i] = Time(a);
            }
        }

        Array.Sort(ta);
        Array.Sort(tb);
        return (ta, tb);
    }

    private static double P(double[] sorted, int percentile) => sorted[Math.Min(sorted.Length - 1, sorted.Length * percentile / 100)];

    private static double Time(Func<Task> call)
    {
        var start = Stopwatch.GetTimestamp();
        call().GetAwaiter().GetResult();
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    private static void Allocation(string name, Func<Task> unmetered, Func<Task> metered, int calls, Action waitForWriter)
    {
        var u = BytesPerCall(unmetered, calls, waitForWriter);
        var m = BytesPerCall(metered, calls, waitForWriter);
        Console.WriteLine(FormattableString.Invariant($"   {name,-19} unmetered {u,8:F0} B/call  metered {m,8:F0} B/call  extra {m - u,6:F0} B/call"));
    }

    private static double BytesPerCall(Func<Task> call, int calls, Action waitForWriter)
    {
        waitForWriter();
        GC.Collect();
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < calls; i++)
        {
            call().GetAwaiter().GetResult();
        }

        waitForWriter();

        return (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)calls;
    }

    private static void InProcess(string name, Func<Task> unmetered, Func<Task> metered, int calls, Action waitForWriter)
    {
        // Blocks of calls alternate between the clients; the median block is kept.
        const int Rounds = 7;
        var cpuU = new double[Rounds];
        var cpuM = new double[Rounds];
        var callerU = new double[Rounds];
        var callerM = new double[Rounds];
        var bytesU = new double[Rounds];
        var bytesM = new double[Rounds];
        var gcU = new double[Rounds];
        var gcM = new double[Rounds];
        var pauseU = new double[Rounds];
        var pauseM = new double[Rounds];
        for (var r = 0; r < Rounds; r++)
        {
            (cpuU[r], callerU[r], bytesU[r], gcU[r], pauseU[r]) = Block(unmetered, calls, waitForWriter);
            (cpuM[r], callerM[r], bytesM[r], gcM[r], pauseM[r]) = Block(metered, calls, waitForWriter);
        }

        Array.Sort(gcU);
        Array.Sort(gcM);
        Array.Sort(pauseU);
        Array.Sort(pauseM);
        Array.Sort(cpuU);
        Array.Sort(cpuM);
        Array.Sort(callerU);
        Array.Sort(callerM);
        Array.Sort(bytesU);
        Array.Sort(bytesM);
        var (cu, cm, bu, bm) = (cpuU[Rounds / 2], cpuM[Rounds / 2], bytesU[Rounds / 2], bytesM[Rounds / 2]);
        var (tu, tm) = (callerU[Rounds / 2], callerM[Rounds / 2]);
        Console.WriteLine(FormattableString.Invariant(
            $"   {name,-19} CPU unmetered {cu,6:F1} us/call  metered {cm,6:F1} us/call  extra {cm - cu,5:F1} us/call (caller's thread: {tu:F1} -> {tm:F1}, extra {tm - tu:F1}) | unmetered {bu,6:F0} B/call  metered {bm,6:F0} B/call  extra {bm - bu,5:F0} B/call"));
        Console.WriteLine(FormattableString.Invariant(
            $"   {string.Empty,-19} garbage collections per 1,000 calls: unmetered {gcU[Rounds / 2]:F2}  metered {gcM[Rounds / 2]:F2}; GC pause per call: unmetered {pauseU[Rounds / 2]:F2} us  metered {pauseM[Rounds / 2]:F2} us"));
    }

    private static (double CpuMicroseconds, double CallerMicroseconds, double Bytes, double CollectionsPerThousand, double PauseMicroseconds) Block(Func<Task> call, int calls, Action waitForWriter)
    {
        var collections = GC.CollectionCount(0);
        var pause = GC.GetTotalPauseDuration();
        var bytes = GC.GetTotalAllocatedBytes(precise: true);
        var caller = ThreadCpuNanoseconds();
        var cpu = ProcessCpuNanoseconds();
        for (var i = 0; i < calls; i++)
        {
            call().GetAwaiter().GetResult();
        }

        var callerAfter = ThreadCpuNanoseconds();

        // Let the writer finish its share of this block (building and pricing deferred records
        // included) before the clock stops.
        waitForWriter();
        Thread.Sleep(20);
        var cpuAfter = ProcessCpuNanoseconds();
        return (
            (cpuAfter - cpu) / 1000.0 / calls,
            (callerAfter - caller) / 1000.0 / calls,
            (GC.GetTotalAllocatedBytes(precise: true) - bytes) / (double)calls,
            (GC.CollectionCount(0) - collections) * 1000.0 / calls,
            (GC.GetTotalPauseDuration() - pause).TotalMicroseconds / calls);
    }

    // Sum of every thread's run time from /proc (nanoseconds, precise), or the coarse
    // TotalProcessorTime where /proc is missing.
    private static long ProcessCpuNanoseconds()
    {
        var tasks = "/proc/self/task";
        if (!Directory.Exists(tasks))
        {
            return (long)(Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds * 1_000_000);
        }

        long total = 0;
        foreach (var task in Directory.EnumerateDirectories(tasks))
        {
            try
            {
                var text = File.ReadAllText(Path.Combine(task, "schedstat"));
                total += long.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
            }
        }

        return total;
    }

    // The calling thread's run time (the in-process calls complete on it synchronously).
    private static long ThreadCpuNanoseconds()
    {
        try
        {
            var text = File.ReadAllText("/proc/thread-self/schedstat");
            return long.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
