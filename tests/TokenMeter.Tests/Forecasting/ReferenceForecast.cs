using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Querying;

namespace TokenMeter.Tests.Forecasting;

// The reference the faster forecasting code must equal to the bit. The projection (ReferenceCostProjection) is the code as
// it was before its per-user work was cut down, kept verbatim; the users' forecasts around it are written plainly here
// (each user's day costs in a dictionary, summed from zero in row order) rather than copied from UsageForecaster, so they
// check its single pass over the store's rows and its DailyCosts too. ForecastingReferenceTests compares the two over many
// random histories, and the forecast-cpu benchmark (bench/TokenMeter.Benchmarks, which links this file) times one against
// the other in the same process. Change nothing here but to follow a deliberate change of the forecasts' figures.

/// <summary>The users' forecasts from the rows the store read, as <see cref="UsageForecaster.ForecastAllUsersAsync"/> computes them.</summary>
internal static class ReferenceForecast
{
    /// <summary>Every user with a monthly cost budget and rows, projected (ordered by user id, ordinal).</summary>
    public static List<UserCostForecast> ForecastAllUsers(IReadOnlyList<UserDailyUsage> rows, BudgetSettings settings, DateOnly historyStart, DateTimeOffset now)
    {
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var result = new List<UserCostForecast>();
        foreach (var user in rows.GroupBy(r => r.UserId, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var own = settings.Users.FirstOrDefault(u => string.Equals(u.UserId, user.Key, StringComparison.Ordinal));
            if ((own is null ? settings.Default?.MonthlyCostUsd : own.MonthlyCostUsd) is not { } monthlyCost)
            {
                continue;
            }

            // The days read (history start to today) with their costs; the first day with a call among all the user's rows.
            var daily = new Dictionary<DateOnly, decimal>();
            foreach (var row in user.Where(r => r.Date >= historyStart && r.Date <= today))
            {
                daily[row.Date] = daily.GetValueOrDefault(row.Date) + row.Figures.CostUsd;
            }

            DateOnly? firstDay = user.Where(r => r.Figures.Calls > 0).Select(r => (DateOnly?)r.Date).Min();
            var projection = ReferenceCostProjection.Project(daily, firstDay, now);
            result.Add(new UserCostForecast(user.Key, projection.MonthToDate, projection.Projected, monthlyCost, ExhaustionDate(projection, daily, monthlyCost, today)));
        }

        return result;
    }

    /// <summary>The day cumulative spend reaches <paramref name="budget"/>: from history when it already has, else along the projection.</summary>
    public static DateOnly? ExhaustionDate(CostProjectionResult projection, IReadOnlyDictionary<DateOnly, decimal> daily, decimal budget, DateOnly today)
    {
        decimal cumulative = 0m;
        for (var d = projection.Month; d <= today; d = d.AddDays(1))
        {
            cumulative += daily.GetValueOrDefault(d);
            if (cumulative >= budget)
            {
                return d;
            }
        }

        foreach (var day in projection.Path)
        {
            cumulative += day.ExpectedCostUsd;
            if (cumulative >= budget)
            {
                return day.Day;
            }
        }

        return null;
    }
}

/// <summary>The projection of one cost series, as <see cref="CostProjection.Project"/> computed it.</summary>
internal static class ReferenceCostProjection
{
    /// <summary>Projects the month that contains <paramref name="asOf"/> (UTC).</summary>
    /// <param name="dailyCost">Cost per UTC day; missing days within the history cost nothing.</param>
    /// <param name="firstDay">The first day with any usage (history starts here); null when there is none.</param>
    /// <param name="asOf">When the projection is made; the day it falls on counts as partly elapsed.</param>
    /// <param name="settings">Knobs; null for <see cref="ProjectionSettings.Default"/>.</param>
    /// <returns>The projection.</returns>
    public static CostProjectionResult Project(
        IReadOnlyDictionary<DateOnly, decimal> dailyCost,
        DateOnly? firstDay,
        DateTimeOffset asOf,
        ProjectionSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(dailyCost);
        settings ??= ProjectionSettings.Default;

        var utc = asOf.ToUniversalTime();
        var today = DateOnly.FromDateTime(utc.UtcDateTime);
        var elapsed = utc.TimeOfDay.TotalDays;
        var monthStart = new DateOnly(today.Year, today.Month, 1);
        var monthEnd = monthStart.AddMonths(1).AddDays(-1);

        decimal monthToDate = 0m;
        for (var d = monthStart; d <= today; d = d.AddDays(1))
        {
            monthToDate += Cost(dailyCost, d);
        }

        var historyDays = firstDay is { } first && first < today ? today.DayNumber - first.DayNumber : 0;

        // The rest of today plus every later day of the month, each with its expected cost.
        var remaining = new List<DateOnly>();
        for (var d = today; d <= monthEnd; d = d.AddDays(1))
        {
            remaining.Add(d);
        }

        double[] expected;
        double dailySpread;
        double windowSize;
        string method;
        double widening = 1.0;

        if (historyDays == 0)
        {
            // Not one complete day: extrapolate today's spend so far over the elapsed part of the day.
            var todaySoFar = (double)Cost(dailyCost, today);
            var rate = firstDay is null ? 0 : todaySoFar / Math.Max(elapsed, 0.25);
            expected = remaining.Select(_ => rate).ToArray();
            dailySpread = rate;
            windowSize = 1;
            widening = settings.ShortHistoryWidening;
            method = firstDay is null
                ? "no usage yet: nothing to project"
                : "flat rate from today so far (no complete day of history yet; interval widened)";
        }
        else
        {
            var window = Math.Min(settings.WindowDays, historyDays);
            var days = new List<(DateOnly Day, double Cost)>(window);
            for (var d = today.AddDays(-window); d < today; d = d.AddDays(1))
            {
                days.Add((d, (double)Cost(dailyCost, d)));
            }

            var (weekdays, weekends) = SplitWeek(days);
            var seasonal = historyDays >= settings.MinimumHistoryDays && weekdays.Length > 0 && weekends.Length > 0;

            double weekdayRate, weekendRate;
            if (seasonal)
            {
                weekdayRate = RobustMean(weekdays);
                weekendRate = RobustMean(weekends);
            }
            else
            {
                weekdayRate = weekendRate = RobustMean(CostsOf(days));
            }

            double Rate(DateOnly d) => IsWeekend(d) ? weekendRate : weekdayRate;

            // Growth: the last window against the one before it, damped, carried from the window's middle.
            var growthPerDay = 0.0;
            if (seasonal && settings.UseTrend && historyDays >= 2 * settings.WindowDays)
            {
                var before = new List<(DateOnly Day, double Cost)>(window);
                for (var d = today.AddDays(-2 * window); d < today.AddDays(-window); d = d.AddDays(1))
                {
                    before.Add((d, (double)Cost(dailyCost, d)));
                }

                var previous = WeeklyLevel(before);
                var recent = WeeklyLevel(days);
                if (previous > 0 && recent > 0)
                {
                    growthPerDay = settings.TrendDamping * Math.Clamp(Math.Log(recent / previous) / window, -0.03, 0.03);
                }
            }

            var centre = window / 2.0;
            expected = remaining
                .Select(d => Rate(d) * Math.Exp(growthPerDay * (d.DayNumber - today.DayNumber + centre)))
                .ToArray();

            var residuals = new double[days.Count];
            for (var i = 0; i < residuals.Length; i++)
            {
                residuals[i] = days[i].Cost - Rate(days[i].Day);
            }

            dailySpread = StandardDeviation(residuals);
            windowSize = days.Count;

            if (historyDays < settings.MinimumHistoryDays)
            {
                widening = settings.ShortHistoryWidening;
                method = Method(0, historyDays, settings.MinimumHistoryDays);
            }
            else if (!seasonal)
            {
                method = Method(1, window, 0);
            }
            else
            {
                method = Method(growthPerDay == 0 ? 2 : 3, window, 0);
            }
        }

        // Today counts only for its part still to come.
        expected[0] *= Math.Max(0, 1 - elapsed);
        var remainingDays = Math.Max(0, 1 - elapsed) + (remaining.Count - 1);
        var remainingTotal = expected.Sum();

        // Day-to-day noise adds up over the remaining days; the error of the estimated rate applies to every one
        // of them at once; drift is a share of what remains.
        var variance = (remainingDays * dailySpread * dailySpread)
            + Math.Pow(remainingDays * dailySpread, 2) / Math.Max(windowSize, 1)
            + Math.Pow(settings.DriftFraction * remainingTotal, 2);
        var halfWidth = settings.Z * Math.Sqrt(variance) * widening;

        var projected = monthToDate + ToMoney(remainingTotal);
        var low = monthToDate + ToMoney(Math.Max(0, remainingTotal - halfWidth));
        var high = monthToDate + ToMoney(remainingTotal + halfWidth);

        var path = new List<ProjectedDay>(remaining.Count);
        for (var i = 0; i < remaining.Count; i++)
        {
            path.Add(new ProjectedDay(remaining[i], ToMoney(expected[i])));
        }

        return new CostProjectionResult(monthStart, monthToDate, projected, low, high, method, historyDays, path);
    }

    // The method texts, formatted once per kind and count (a thousand users' forecasts share a few).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int Kind, int Days, int Minimum), string> Methods = new();

    private static string Method(int kind, int days, int minimum) => Methods.GetOrAdd((kind, days, minimum), static k => k.Kind switch
    {
        0 => $"flat rate over {k.Days} day(s) (fewer than {k.Minimum} days of history; interval widened)",
        1 => $"flat rate over the last {k.Days} days",
        2 => $"weekday/weekend rates over the last {k.Days} days",
        _ => $"weekday/weekend rates over the last {k.Days} days with damped growth",
    });

    /// <summary>Saturday and Sunday.</summary>
    /// <param name="day">The day.</param>
    /// <returns>True on a weekend.</returns>
    public static bool IsWeekend(DateOnly day) => day.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday;

    private static decimal Cost(IReadOnlyDictionary<DateOnly, decimal> dailyCost, DateOnly day)
        => dailyCost.TryGetValue(day, out var cost) ? cost : 0m;

    private static decimal ToMoney(double value)
        => double.IsFinite(value) ? Math.Round((decimal)Math.Max(0, value), 8, MidpointRounding.ToEven) : 0m;

    // The helpers below run once or more per user for the users' forecasts (a thousand users at a time): plain loops and
    // one array each, where LINQ chains cost several allocations and enumerators per call. Each sum adds the values in
    // their order, from zero, as Enumerable.Sum and Average do for doubles, so the results are the same to the bit.

    /// <summary>Mean with values beyond three robust deviations of the median clipped, so one spike does not set the rate.</summary>
    private static double RobustMean(double[] values)
    {
        if (values.Length == 0)
        {
            return 0;
        }

        var median = Median(values);
        Span<double> deviations = values.Length <= MaxOnStack ? stackalloc double[values.Length] : new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            deviations[i] = Math.Abs(values[i] - median);
        }

        var mad = Median(deviations) * 1.4826;
        if (mad <= 0)
        {
            // Most values are equal: anything else is an outlier, unless most are zero (a sparse user's days).
            return median > 0 ? median : Mean(values);
        }

        var lowCap = median - (3 * mad);
        var highCap = median + (3 * mad);
        var sum = 0.0;
        foreach (var v in values)
        {
            sum += Math.Clamp(v, lowCap, highCap);
        }

        return sum / values.Length;
    }

    /// <summary>A week's typical daily cost from a run of days: the robust rates of weekdays and weekends, weighted 5:2.</summary>
    private static double WeeklyLevel(List<(DateOnly Day, double Cost)> days)
    {
        var (weekdays, weekends) = SplitWeek(days);
        return ((5 * RobustMean(weekdays)) + (2 * RobustMean(weekends))) / 7;
    }

    /// <summary>The costs of the weekdays and of the weekend days of a run of days, each in the run's order.</summary>
    private static (double[] Weekdays, double[] Weekends) SplitWeek(List<(DateOnly Day, double Cost)> days)
    {
        var weekendCount = 0;
        foreach (var (day, _) in days)
        {
            weekendCount += IsWeekend(day) ? 1 : 0;
        }

        var weekdays = new double[days.Count - weekendCount];
        var weekends = new double[weekendCount];
        int w = 0, e = 0;
        foreach (var (day, cost) in days)
        {
            if (IsWeekend(day))
            {
                weekends[e++] = cost;
            }
            else
            {
                weekdays[w++] = cost;
            }
        }

        return (weekdays, weekends);
    }

    private static double[] CostsOf(List<(DateOnly Day, double Cost)> days)
    {
        var costs = new double[days.Count];
        for (var i = 0; i < costs.Length; i++)
        {
            costs[i] = days[i].Cost;
        }

        return costs;
    }

    // Days a median sorts on the stack (the rate windows are 28 days by default), and sorts by insertion (a few dozen days).
    private const int MaxOnStack = 128;
    private const int MaxInsertionSort = 64;

    /// <summary>
    /// The middle value (the mean of the two middle ones for an even count), from a sorted copy on the stack: the users'
    /// forecasts take a dozen medians per user, a thousand users at a time, where a cloned array and Array.Sort each time
    /// were most of the projection's time. Costs are never NaN, so any correct sort gives the same middle values.
    /// </summary>
    internal static double Median(ReadOnlySpan<double> values)
    {
        Span<double> sorted = values.Length <= MaxOnStack ? stackalloc double[values.Length] : new double[values.Length];
        values.CopyTo(sorted);
        if (sorted.Length > MaxInsertionSort)
        {
            sorted.Sort();
        }
        else
        {
            InsertionSort(sorted);
        }

        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static void InsertionSort(Span<double> values)
    {
        for (var i = 1; i < values.Length; i++)
        {
            var value = values[i];
            var at = i - 1;
            while (at >= 0 && values[at] > value)
            {
                values[at + 1] = values[at];
                at--;
            }

            values[at + 1] = value;
        }
    }

    private static double Mean(double[] values)
    {
        var sum = 0.0;
        foreach (var v in values)
        {
            sum += v;
        }

        return sum / values.Length;
    }

    private static double StandardDeviation(double[] values)
    {
        if (values.Length < 2)
        {
            return values.Length == 1 ? Math.Abs(values[0]) : 0;
        }

        var mean = Mean(values);
        var squares = 0.0;
        foreach (var v in values)
        {
            squares += (v - mean) * (v - mean);
        }

        return Math.Sqrt(squares / (values.Length - 1));
    }
}
