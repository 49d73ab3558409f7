using System.Diagnostics;

namespace TokenMeter.Benchmarks.Metering;

/// <summary>
/// A quick look at bytes allocated (all threads) and median latency per call, metered vs
/// unmetered, outside BenchmarkDotNet: <c>dotnet run -c Release -- metering-probe [calls]</c>.
/// </summary>
internal static class AllocationProbe
{
    public static int Run(string[] args)
    {
        var calls = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 2000;
        var bench = new MeteringOverheadBenchmarks();
        bench.Setup();
        try
        {
            foreach (var (name, call) in new (string, Func<Task>)[]
            {
                ("plain unmetered", bench.PlainUnmetered),
                ("plain metered", bench.PlainMetered),
                ("stream unmetered", bench.StreamUnmetered),
                ("stream metered", bench.StreamMetered),
            })
            {
                Measure(name, call, calls / 4); // warm-up
                Measure(name, call, calls);
            }

            // Latency on a shared, busy machine: alternate the two clients call by call so that
            // background load hits both alike, then compare medians.
            foreach (var (name, unmetered, metered) in new (string, Func<Task>, Func<Task>)[]
            {
                ("plain", bench.PlainUnmetered, bench.PlainMetered),
                ("stream whole", bench.StreamUnmetered, bench.StreamMetered),
                ("stream first chunk", bench.FirstChunkUnmetered, bench.FirstChunkMetered),
            })
            {
                var u = new double[calls];
                var m = new double[calls];
                for (var i = 0; i < calls; i++)
                {
                    u[i] = Time(unmetered);
                    m[i] = Time(metered);
                }

                Array.Sort(u);
                Array.Sort(m);
                Console.WriteLine($"interleaved {name,-18} p50 unmetered {u[calls / 2],7:F1} us  metered {m[calls / 2],7:F1} us  ratio {m[calls / 2] / u[calls / 2]:F3}");
            }
        }
        finally
        {
            bench.Cleanup();
        }

        return 0;
    }

    private static double Time(Func<Task> call)
    {
        var start = Stopwatch.GetTimestamp();
        call().GetAwaiter().GetResult();
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    private static void Measure(string name, Func<Task> call, int calls)
    {
        var times = new double[calls];
        GC.Collect();
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < calls; i++)
        {
            var start = Stopwatch.GetTimestamp();
            call().GetAwaiter().GetResult();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        var bytes = (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)calls;
        Array.Sort(times);
        Console.WriteLine($"{name,-18} p50 {times[calls / 2],8:F1} us  p90 {times[calls * 9 / 10],8:F1} us  {bytes,8:F0} B/call");
    }
}
