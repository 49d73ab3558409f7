using System.Globalization;
using TokenMeter.Forecasting;

namespace TokenMeter.Benchmarks.Forecasting;

/// <summary>
/// Backtest of the month-end cost projection over synthetic but realistic daily histories: a
/// per-day-of-week pattern (weekends quieter by a random factor), growth or decline, multiplicative
/// noise, and sometimes a spike. For each history the projection is made at the end of day 10 and of
/// day 20 and compared with the month's true total.
/// Run: dotnet run -c Release --project bench/TokenMeter.Benchmarks -- forecast-backtest [histories] [seed]
/// </summary>
internal static class ForecastBacktest
{
    public static int Run(string[] args)
    {
        var histories = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1000;
        var seed = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20261125;

        var variants = new (string Name, ProjectionSettings Settings)[]
        {
            ("default: weekday/weekend rates, 21-day window, damped growth, 10% drift", ProjectionSettings.Default),
            ("no growth trend", ProjectionSettings.Default with { UseTrend = false }),
            ("undamped growth trend", ProjectionSettings.Default with { TrendDamping = 1.0 }),
            ("7-day window", ProjectionSettings.Default with { WindowDays = 7 }),
            ("14-day window", ProjectionSettings.Default with { WindowDays = 14 }),
            ("28-day window", ProjectionSettings.Default with { WindowDays = 28 }),
            ("drift 5%", ProjectionSettings.Default with { DriftFraction = 0.05 }),
            ("no drift term", ProjectionSettings.Default with { DriftFraction = 0 }),
        };

        Console.WriteLine(FormattableString.Invariant($"Forecast backtest: {histories} synthetic histories, seed {seed}"));
        Console.WriteLine();
        Console.WriteLine("| settings | MAPE day 10 | MAPE day 20 | 80% interval held, day 10 | held, day 20 | mean interval width day 20 (% of truth) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var (name, settings) in variants)
        {
            var stats = Evaluate(histories, seed, settings);
            Console.WriteLine(FormattableString.Invariant(
                $"| {name} | {stats.Mape10:P1} | {stats.Mape20:P1} | {stats.Coverage10:P0} | {stats.Coverage20:P0} | {stats.Width20:P1} |"));
        }

        // The same scenarios split by kind, for the default settings.
        Console.WriteLine();
        Console.WriteLine("Default settings by kind of history:");
        Console.WriteLine();
        Console.WriteLine("| kind | histories | MAPE day 10 | MAPE day 20 | held day 10 | held day 20 |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var kind in Enum.GetValues<Kind>())
        {
            var stats = Evaluate(histories, seed, ProjectionSettings.Default, kind);
            Console.WriteLine(FormattableString.Invariant(
                $"| {kind} | {stats.Count} | {stats.Mape10:P1} | {stats.Mape20:P1} | {stats.Coverage10:P0} | {stats.Coverage20:P0} |"));
        }

        return 0;
    }

    internal enum Kind
    {
        Steady,
        Growing,
        Declining,
        SpikeInMonth,
        SpikeBeforeForecast,
    }

    private sealed record Stats(int Count, double Mape10, double Mape20, double Coverage10, double Coverage20, double Width20);

    private static Stats Evaluate(int histories, int seed, ProjectionSettings settings, Kind? only = null)
    {
        var random = new Random(seed);
        double ape10 = 0, ape20 = 0, held10 = 0, held20 = 0, width20 = 0;
        var count = 0;
        for (var i = 0; i < histories; i++)
        {
            var history = History.Create(random);
            if (only is { } k && history.Kind != k)
            {
                continue;
            }

            count++;
            var truth = history.MonthTotal();
            foreach (var day in new[] { 10, 20 })
            {
                var asOf = new DateTimeOffset(history.Month.AddDays(day).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
                var known = history.Costs.Where(kv => kv.Key < history.Month.AddDays(day)).ToDictionary(kv => kv.Key, kv => kv.Value);
                var result = CostProjection.Project(known, history.Start, asOf, settings);
                var ape = (double)Math.Abs(result.Projected - truth) / (double)truth;
                var held = result.Low <= truth && truth <= result.High ? 1 : 0;
                if (day == 10)
                {
                    ape10 += ape;
                    held10 += held;
                }
                else
                {
                    ape20 += ape;
                    held20 += held;
                    width20 += (double)(result.High - result.Low) / (double)truth;
                }
            }
        }

        return new Stats(count, ape10 / count, ape20 / count, held10 / count, held20 / count, width20 / count);
    }

    private sealed class History
    {
        public required Kind Kind { get; init; }

        public required DateOnly Start { get; init; }

        public required DateOnly Month { get; init; }

        public required Dictionary<DateOnly, decimal> Costs { get; init; }

        public decimal MonthTotal()
        {
            var end = Month.AddMonths(1);
            return Costs.Where(kv => kv.Key >= Month && kv.Key < end).Sum(kv => kv.Value);
        }

        public static History Create(Random random)
        {
            var kind = (Kind)random.Next(5);

            // A month between 2025 and 2027, so weekdays fall differently, with 60 days of history before it.
            var month = new DateOnly(2025 + random.Next(3), 1 + random.Next(12), 1);
            var start = month.AddDays(-60);
            var end = month.AddMonths(1);

            var baseCost = 5 + (random.NextDouble() * 195);
            var weekend = 0.2 + (random.NextDouble() * 0.6);

            // Homework apps: busy Monday to Thursday, quieter Friday and Saturday, a Sunday-evening rush.
            var dayOfWeek = new double[7];
            dayOfWeek[(int)DayOfWeek.Monday] = 1.10;
            dayOfWeek[(int)DayOfWeek.Tuesday] = 1.05;
            dayOfWeek[(int)DayOfWeek.Wednesday] = 1.00;
            dayOfWeek[(int)DayOfWeek.Thursday] = 1.00;
            dayOfWeek[(int)DayOfWeek.Friday] = 0.85;
            dayOfWeek[(int)DayOfWeek.Saturday] = weekend * 0.8;
            dayOfWeek[(int)DayOfWeek.Sunday] = weekend * 1.2;
            for (var d = 0; d < 7; d++)
            {
                dayOfWeek[d] *= 1 + ((random.NextDouble() - 0.5) * 0.1);
            }

            // Monthly growth in percent.
            var monthlyGrowth = kind switch
            {
                Kind.Growing => 0.10 + (random.NextDouble() * 0.30),
                Kind.Declining => -(0.05 + (random.NextDouble() * 0.20)),
                _ => (random.NextDouble() - 0.5) * 0.10,
            };
            var growthPerDay = Math.Log(1 + monthlyGrowth) / 30;
            var noise = 0.08 + (random.NextDouble() * 0.17);

            DateOnly? spikeDay = kind switch
            {
                Kind.SpikeInMonth => month.AddDays(20 + random.Next(end.DayNumber - month.DayNumber - 20)),
                Kind.SpikeBeforeForecast => month.AddDays(3 + random.Next(15)),
                _ => null,
            };
            var spikeFactor = 3 + (random.NextDouble() * 5);

            var costs = new Dictionary<DateOnly, decimal>();
            for (var d = start; d < end; d = d.AddDays(1))
            {
                var t = d.DayNumber - start.DayNumber;
                var value = baseCost * Math.Exp(growthPerDay * t) * dayOfWeek[(int)d.DayOfWeek] * Math.Exp(Gaussian(random) * noise);
                if (d == spikeDay)
                {
                    value *= spikeFactor;
                }

                costs[d] = Math.Round((decimal)value, 6);
            }

            return new History { Kind = kind, Start = start, Month = month, Costs = costs };
        }

        private static double Gaussian(Random random)
        {
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
        }
    }
}
