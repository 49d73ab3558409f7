using System.Diagnostics;
using System.Globalization;
using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Querying;
using TokenMeter.Tests.Forecasting;

namespace TokenMeter.Benchmarks.Forecasting;

/// <summary>
/// The CPU and allocation of the users' forecasts after the store's read (GET /forecast/users without the query), the
/// code as it is (B) against the tests' reference (A, tests/TokenMeter.Tests/Forecasting/ReferenceForecast.cs, linked into
/// this project: the projection as it was before its per-user work was cut down, each user's days in a dictionary), in one
/// process, interleaved A B B A ... so the machine's load hits both alike:
/// <c>dotnet bench/TokenMeter.Benchmarks/bin/Release/net10.0/TokenMeter.Benchmarks.dll forecast-cpu [users] [rounds] [requests per round]</c>.
/// The rows are generated as the scale bench loads them (about 13.7 calls per user and day, every user with rows on each
/// of the 49 days before a mid-month today, none today; every user under one default budget), and both sides' forecasts
/// are checked equal to the bit before anything is timed.
/// </summary>
internal static class ForecastCpu
{
    private static readonly (decimal Input, decimal Output)[] Prices = [(2.50m, 10.00m), (0.15m, 0.60m), (0.40m, 1.60m), (1.10m, 4.40m)];

    public static int Run(string[] args)
    {
        var users = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1000;
        var rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 8;
        var requests = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 100;

        // The scale bench's today and clock: noon on a mid-month day, the history read from 49 days back.
        var today = new DateOnly(2026, 11, 20);
        var now = new DateTimeOffset(today.ToDateTime(new TimeOnly(12, 0)), TimeSpan.Zero);
        var historyStart = today.AddDays(-49);
        var rows = Rows(users, historyStart, today);
        var budgets = new BudgetSettings(new BudgetLimit(0.01m, null), []);
        Console.WriteLine(FormattableString.Invariant(
            $"forecast-cpu: {users:N0} users x {today.DayNumber - historyStart.DayNumber} days ({rows.Count:N0} rows), {rounds} rounds of {requests} requests per side, A B B A ...; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}, {Environment.ProcessorCount} cores"));

        Func<List<UserCostForecast>> a = () => ReferenceForecast.ForecastAllUsers(rows, budgets, historyStart, now);
        Func<List<UserCostForecast>> b = () => UsageForecaster.ForecastUsers(rows, budgets, historyStart, now);
        var want = a();
        var got = b();
        if (!want.SequenceEqual(got) || !want.Zip(got).All(p => Bits(p.First) == Bits(p.Second)))
        {
            Console.WriteLine("MISMATCH: the two sides' forecasts differ");
            return 1;
        }

        // Warm up until the tiered JIT has fully optimized both sides (two rounds with a pause, as the metering probe does).
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < 60; i++)
            {
                a();
                b();
            }

            Thread.Sleep(500);
        }

        var cpu = new Dictionary<char, List<double>> { ['A'] = [], ['B'] = [] };
        var bytes = new Dictionary<char, List<double>> { ['A'] = [], ['B'] = [] };
        for (var round = 0; round < rounds; round++)
        {
            foreach (var side in round % 2 == 0 ? "AB" : "BA")
            {
                var run = side == 'A' ? a : b;
                GC.Collect();
                GC.WaitForPendingFinalizers();
                var allocated = GC.GetAllocatedBytesForCurrentThread();
                var process = Process.GetCurrentProcess().TotalProcessorTime;
                for (var i = 0; i < requests; i++)
                {
                    run();
                }

                // The whole process's CPU (the GC's threads included), per request.
                var ms = (Process.GetCurrentProcess().TotalProcessorTime - process).TotalMilliseconds / requests;
                var perRequest = (GC.GetAllocatedBytesForCurrentThread() - allocated) / (double)requests;
                cpu[side].Add(ms);
                bytes[side].Add(perRequest);
                Console.WriteLine(FormattableString.Invariant($"  round {round + 1} {side}: {ms:N3} ms CPU per request, {perRequest / 1024:N1} KiB allocated per request"));
            }
        }

        var medianA = Median(cpu['A']);
        var medianB = Median(cpu['B']);
        var ratios = cpu['A'].Zip(cpu['B'], (x, y) => y / x).ToList();
        Console.WriteLine(FormattableString.Invariant(
            $"A (reference) CPU per request: median {medianA:N3} ms (min {cpu['A'].Min():N3}, max {cpu['A'].Max():N3}); allocated {Median(bytes['A']) / 1024:N1} KiB"));
        Console.WriteLine(FormattableString.Invariant(
            $"B (current)   CPU per request: median {medianB:N3} ms (min {cpu['B'].Min():N3}, max {cpu['B'].Max():N3}); allocated {Median(bytes['B']) / 1024:N1} KiB"));
        Console.WriteLine(FormattableString.Invariant(
            $"B/A: {medianB / medianA:P1} of A's CPU by the medians (per round pair: min {ratios.Min():P1}, max {ratios.Max():P1}); {users:N0} users, so {medianA * 1000 / users:N2} vs {medianB * 1000 / users:N2} us per user; load average {LoadAverage()}"));
        return 0;
    }

    /// <summary>A user's forecast with its decimals as their bits (scale included), so equal means equal to the bit.</summary>
    private static string Bits(UserCostForecast f) =>
        string.Join(',', new[] { f.MonthToDateCostUsd, f.ProjectedMonthCostUsd, f.MonthlyCostUsd }.SelectMany(decimal.GetBits)) + f.ProjectedExhaustionDate;

    /// <summary>Every user's rows, in user-id order, each day's cost the sum of its calls' costs as the scale bench prices them.</summary>
    private static List<UserDailyUsage> Rows(int users, DateOnly first, DateOnly today)
    {
        var random = new Random(20261120);
        var rows = new List<UserDailyUsage>();
        for (var u = 0; u < users; u++)
        {
            var userId = "user-" + u.ToString("D4", CultureInfo.InvariantCulture);
            for (var day = first; day < today; day = day.AddDays(1))
            {
                var calls = random.Next(5, 23);
                var cost = 0m;
                for (var c = 0; c < calls; c++)
                {
                    var (input, output) = Prices[random.Next(Prices.Length)];
                    cost += ((random.Next(50, 4000) * input) + (random.Next(20, 1500) * output)) / 1_000_000m;
                }

                rows.Add(new UserDailyUsage(userId, day, new UsageFigures(calls, 0, 0, 0, 0, 0, cost)));
            }
        }

        return rows;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        var mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
