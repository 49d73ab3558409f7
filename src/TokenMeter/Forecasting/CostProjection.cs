namespace TokenMeter.Forecasting;

/// <summary>
/// Projects a month's cost from a daily cost series: month to date, plus each remaining day at the
/// recent rate of its kind (weekday or weekend), with an 80% interval from the spread of recent days.
/// Pure: no clock, no store.
/// </summary>
internal static class CostProjection
{
    /// <summary>Projects the month that contains <paramref name="asOf"/> (UTC).</summary>
    /// <param name="dailyCost">Cost per UTC day; missing days within the history cost nothing.</param>
    /// <param name="firstDay">The first day with any usage (history starts here); null when there is none.</param>
    /// <param name="asOf">When the projection is made; the day it falls on counts as partly elapsed.</param>
    /// <param name="settings">Knobs; null for <see cref="ProjectionSettings.Default"/>.</param>
    /// <returns>The projection.</returns>
    /// <remarks>
    /// The users' forecasts run this a thousand times per request, so it works in a few buffers on the stack: each day's
    /// cost is looked up and converted once, each run of days is split by kind once, and a <see cref="DailyCosts"/> is read
    /// directly rather than through the dictionary interface. Every double is computed by the same operations in the same
    /// order as the plain version (a list per run of days, LINQ for the expected costs and their sum) that the tests keep
    /// as their reference, so the figures are the same to the bit.
    /// </remarks>
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
        var historyDays = firstDay is { } first && first < today ? today.DayNumber - first.DayNumber : 0;
        var window = historyDays == 0 ? 0 : Math.Min(settings.WindowDays, historyDays);

        // The users' forecasts pass their DailyCosts; any other dictionary (the platform's forecast, the tests) is copied
        // into one over the days read (the month to date and the two rate windows), so every cost is read from its arrays.
        var costs = dailyCost as DailyCosts
            ?? DailyCosts.CopyOf(dailyCost, DateOnly.FromDayNumber(Math.Max(0, Math.Min(monthStart.DayNumber, today.DayNumber - (2 * window)))), today);
        var monthToDate = costs.Sum(monthStart, today);

        // The rest of today plus every later day of the month (31 at most), each with its expected cost.
        var remaining = monthEnd.DayNumber - today.DayNumber + 1;
        Span<double> expected = stackalloc double[remaining];
        double dailySpread;
        double windowSize;
        string method;
        double widening = 1.0;

        if (historyDays == 0)
        {
            // Not one complete day: extrapolate today's spend so far over the elapsed part of the day.
            var todaySoFar = (double)costs.CostOrZero(today);
            var rate = firstDay is null ? 0 : todaySoFar / Math.Max(elapsed, 0.25);
            expected.Fill(rate);
            dailySpread = rate;
            windowSize = 1;
            widening = settings.ShortHistoryWidening;
            method = firstDay is null
                ? "no usage yet: nothing to project"
                : "flat rate from today so far (no complete day of history yet; interval widened)";
        }
        else
        {
            // The window's days, oldest first, each day's cost converted once; then split by kind (each kind in the
            // window's order), in buffers of the window's length that the trend's window before this one reuses.
            var windowStart = today.AddDays(-window);
            Span<double> days = window <= MaxOnStack ? stackalloc double[window] : new double[window];
            Span<double> weekdayBuffer = window <= MaxOnStack ? stackalloc double[window] : new double[window];
            Span<double> weekendBuffer = window <= MaxOnStack ? stackalloc double[window] : new double[window];
            costs.CopyTo(windowStart, days);
            var weekdayCount = SplitWeek(days, windowStart, weekdayBuffer, weekendBuffer);
            ReadOnlySpan<double> weekdays = weekdayBuffer[..weekdayCount], weekends = weekendBuffer[..(window - weekdayCount)];
            var seasonal = historyDays >= settings.MinimumHistoryDays && weekdays.Length > 0 && weekends.Length > 0;

            double weekdayRate, weekendRate;
            if (seasonal)
            {
                weekdayRate = RobustMean(weekdays);
                weekendRate = RobustMean(weekends);
            }
            else
            {
                weekdayRate = weekendRate = RobustMean(days);
            }

            // Growth: the last window against the one before it, damped, carried from the window's middle. The last
            // window's weekly level is that of the two rates just found (the trend needs the seasonal rates, and they are
            // the robust means of the same days), so only the window before is read and its rates found.
            var growthPerDay = 0.0;
            if (seasonal && settings.UseTrend && historyDays >= 2 * settings.WindowDays)
            {
                var beforeStart = today.AddDays(-2 * window);
                Span<double> before = window <= MaxOnStack ? stackalloc double[window] : new double[window];
                costs.CopyTo(beforeStart, before);
                var beforeWeekdays = SplitWeek(before, beforeStart, weekdayBuffer, weekendBuffer);
                var previous = WeeklyLevel(RobustMean(weekdayBuffer[..beforeWeekdays]), RobustMean(weekendBuffer[..(window - beforeWeekdays)]));
                var recent = WeeklyLevel(weekdayRate, weekendRate);
                if (previous > 0 && recent > 0)
                {
                    growthPerDay = settings.TrendDamping * Math.Clamp(Math.Log(recent / previous) / window, -0.03, 0.03);
                }
            }

            // Without growth every factor is Math.Exp(0), exactly 1, so the rate is the expected cost as it stands.
            var centre = window / 2.0;
            for (var i = 0; i < expected.Length; i++)
            {
                var rate = IsWeekend(today.AddDays(i)) ? weekendRate : weekdayRate;
                expected[i] = growthPerDay == 0 ? rate : rate * Math.Exp(growthPerDay * (i + centre));
            }

            // The residuals overwrite the window's costs, each read just before.
            for (var i = 0; i < days.Length; i++)
            {
                days[i] -= IsWeekend(windowStart.AddDays(i)) ? weekendRate : weekdayRate;
            }

            dailySpread = StandardDeviation(days);
            windowSize = days.Length;

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
        var remainingDays = Math.Max(0, 1 - elapsed) + (remaining - 1);
        var remainingTotal = Sum(expected);

        // Day-to-day noise adds up over the remaining days; the error of the estimated rate applies to every one
        // of them at once; drift is a share of what remains.
        var variance = (remainingDays * dailySpread * dailySpread)
            + Math.Pow(remainingDays * dailySpread, 2) / Math.Max(windowSize, 1)
            + Math.Pow(settings.DriftFraction * remainingTotal, 2);
        var halfWidth = settings.Z * Math.Sqrt(variance) * widening;

        var projected = monthToDate + ToMoney(remainingTotal);
        var low = monthToDate + ToMoney(Math.Max(0, remainingTotal - halfWidth));
        var high = monthToDate + ToMoney(remainingTotal + halfWidth);

        // A day expected to cost what the day before it is (the days of a kind without growth) is worth the same money:
        // equal doubles (0 and -0 included, which ToMoney takes to the same zero) convert to the same decimal.
        var path = new ProjectedDay[remaining];
        for (var i = 0; i < path.Length; i++)
        {
            var money = i > 0 && expected[i] == expected[i - 1] ? path[i - 1].ExpectedCostUsd : ToMoney(expected[i]);
            path[i] = new ProjectedDay(today.AddDays(i), money);
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

    private static decimal ToMoney(double value)
        => double.IsFinite(value) ? Math.Round((decimal)Math.Max(0, value), 8, MidpointRounding.ToEven) : 0m;

    // The helpers below run once or more per user for the users' forecasts (a thousand users at a time): plain loops over
    // spans on the stack, where LINQ chains and arrays cost several allocations per call. Each sum adds the values in
    // their order, from zero, as Enumerable.Sum and Average do for doubles, so the results are the same to the bit.

    private static double Sum(ReadOnlySpan<double> values)
    {
        var sum = 0.0;
        foreach (var v in values)
        {
            sum += v;
        }

        return sum;
    }

    /// <summary>Mean with values beyond three robust deviations of the median clipped, so one spike does not set the rate.</summary>
    private static double RobustMean(ReadOnlySpan<double> values)
    {
        if (values.Length == 0)
        {
            return 0;
        }

        Span<double> sorted = values.Length <= MaxOnStack ? stackalloc double[values.Length] : new double[values.Length];
        var median = Median(values, sorted);
        var mad = MedianDistance(sorted, median) * 1.4826;
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

    /// <summary>A week's typical daily cost from the robust rates of its weekdays and weekends, weighted 5:2.</summary>
    private static double WeeklyLevel(double weekdayRate, double weekendRate) => ((5 * weekdayRate) + (2 * weekendRate)) / 7;

    /// <summary>
    /// Copies the costs of the weekdays and of the weekend days of a run of days from <paramref name="first"/> to the front
    /// of the two buffers (each as long as the run), each kind in the run's order.
    /// </summary>
    /// <returns>How many weekdays (the rest are weekend days).</returns>
    private static int SplitWeek(ReadOnlySpan<double> days, DateOnly first, Span<double> weekdays, Span<double> weekends)
    {
        int w = 0, e = 0;
        for (var i = 0; i < days.Length; i++)
        {
            if (IsWeekend(first.AddDays(i)))
            {
                weekends[e++] = days[i];
            }
            else
            {
                weekdays[w++] = days[i];
            }
        }

        return w;
    }

    // Days a median sorts, and a rate window is split, on the stack (the rate windows are 21 days by default), and days a
    // median sorts by insertion (a few dozen days).
    private const int MaxOnStack = 128;
    private const int MaxInsertionSort = 64;

    /// <summary>
    /// The middle value (the mean of the two middle ones for an even count), from a sorted copy on the stack: the users'
    /// forecasts take several medians per user, a thousand users at a time, where a cloned array and Array.Sort each time
    /// were most of the projection's time. Costs are never NaN, so any correct sort gives the same middle values.
    /// </summary>
    internal static double Median(ReadOnlySpan<double> values)
    {
        Span<double> sorted = values.Length <= MaxOnStack ? stackalloc double[values.Length] : new double[values.Length];
        return Median(values, sorted);
    }

    /// <summary>The median of <paramref name="values"/>, leaving them sorted in <paramref name="sorted"/> (as long as they are).</summary>
    private static double Median(ReadOnlySpan<double> values, Span<double> sorted)
    {
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

    /// <summary>
    /// The median of the distances <c>Math.Abs(value - median)</c> of sorted values from their median, without a second
    /// sort: the distances of the values up to the median grow from the median down, those of the values above it grow
    /// from the median up (a difference rounds monotonically), so merging the two runs outward from the median takes the
    /// distances in ascending order, and the middle one or two are found after half of them. A median depends only on
    /// which distances there are, not on their order, so this is the median of the distances computed and sorted. At least
    /// one value.
    /// </summary>
    internal static double MedianDistance(ReadOnlySpan<double> sorted, double median)
    {
        // The first value above the median; the values before it are at or below it.
        var count = sorted.Length;
        var above = 0;
        while (above < count && sorted[above] <= median)
        {
            above++;
        }

        int down = above - 1, up = above;
        var mid = count / 2;
        double previous = 0, current = 0;
        for (var taken = 0; taken <= mid; taken++)
        {
            previous = current;
            if (up >= count || (down >= 0 && Math.Abs(sorted[down] - median) <= Math.Abs(sorted[up] - median)))
            {
                current = Math.Abs(sorted[down--] - median);
            }
            else
            {
                current = Math.Abs(sorted[up++] - median);
            }
        }

        return count % 2 == 1 ? current : (previous + current) / 2;
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

    private static double Mean(ReadOnlySpan<double> values)
    {
        var sum = 0.0;
        foreach (var v in values)
        {
            sum += v;
        }

        return sum / values.Length;
    }

    private static double StandardDeviation(ReadOnlySpan<double> values)
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

/// <summary>What <see cref="CostProjection.Project"/> found.</summary>
/// <param name="Month">The month's first day.</param>
/// <param name="MonthToDate">Cost so far this month.</param>
/// <param name="Projected">Projected month total.</param>
/// <param name="Low">80% interval, low end.</param>
/// <param name="High">80% interval, high end.</param>
/// <param name="Method">How, in words.</param>
/// <param name="HistoryDays">Complete days of history.</param>
/// <param name="Path">Expected cost of the rest of today and of each later day of the month.</param>
internal sealed record CostProjectionResult(
    DateOnly Month,
    decimal MonthToDate,
    decimal Projected,
    decimal Low,
    decimal High,
    string Method,
    int HistoryDays,
    IReadOnlyList<ProjectedDay> Path);

/// <summary>A day's expected cost.</summary>
/// <param name="Day">The day.</param>
/// <param name="ExpectedCostUsd">Expected cost.</param>
internal readonly record struct ProjectedDay(DateOnly Day, decimal ExpectedCostUsd);
