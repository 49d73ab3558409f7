using TokenMeter.Querying;

namespace TokenMeter.Postgres.Querying;

/// <summary>
/// The folded rollup rows of the dashboards' two bulk reads kept in memory with the day versions they were read at
/// (<c>usage_day_versions</c>, migration 0014): every user's rows of a day (the forecasts), and every user's lines of a
/// month (the statements). A read asks the store for the versions of its days in the same statement as the rows it
/// still needs, so what it takes from here is exactly what the rollups hold in that statement's snapshot: a day whose
/// version moved (a late record folded into it, a re-pricing, any instance's fold) is read again, and what is pending
/// a fold is always read. One instance per <see cref="PostgresUsageQueries"/> (a singleton per store), shared by
/// concurrent requests: entries are immutable and replaced whole under a lock.
/// </summary>
/// <param name="maxRows">
/// At most this many rows (days' rows and months' lines together) are held, ~150-200 bytes each: beyond it the oldest
/// days go first, then the least recently used months (a store with more users than that reads more of each request
/// from PostgreSQL, as without this class).
/// </param>
internal sealed class FinishedDays(int maxRows = FinishedDays.DefaultMaxRows)
{
    /// <summary>The default row budget (about 100 MB): 10,000 users' 50 days of forecasts, or 1,000 users' days and months.</summary>
    public const int DefaultMaxRows = 500_000;

    // Bounds: the forecasts read 50 days; a few months of statements are looked at in turn.
    private const int MaxDays = 120;
    private const int MaxMonths = 4;

    private readonly Lock gate = new();
    private readonly Dictionary<DateOnly, (long Version, UserDailyUsage[]? Rows)> days = [];
    private readonly Dictionary<DateOnly, MonthLines> months = [];
    private long uses;
    private long daysRead;
    private long rowsHeld;

    /// <summary>How many rows (days' rows and months' lines) are held now.</summary>
    public long RowsHeld
    {
        get
        {
            lock (gate)
            {
                return rowsHeld;
            }
        }
    }

    /// <summary>How many days' rows have been read from the store and kept (a day read again counts again).</summary>
    public long DaysRead
    {
        get
        {
            lock (gate)
            {
                return daysRead;
            }
        }
    }

    /// <summary>The days in [<paramref name="firstDay"/>, <paramref name="lastDay"/>] held, with their versions and rows (in day order).</summary>
    public List<(DateOnly Day, long Version, UserDailyUsage[] Rows)> DaysHeld(DateOnly firstDay, DateOnly lastDay)
    {
        lock (gate)
        {
            return [.. days.Where(d => d.Key >= firstDay && d.Key <= lastDay && d.Value.Rows is not null).OrderBy(d => d.Key).Select(d => (d.Key, d.Value.Version, d.Value.Rows!))];
        }
    }

    /// <summary>
    /// Keeps the rows of days just read at their versions, unless a day's version moved since it was last read: a day
    /// that changes between reads (today, under ingest) is held by its version only, and its rows are kept once a read
    /// finds that version again, so rows that would be replaced at every request are not kept (and promoted by the
    /// garbage collector) for nothing. The oldest days go beyond <see cref="MaxDays"/>.
    /// </summary>
    public void KeepDays(IEnumerable<(DateOnly Day, long Version, UserDailyUsage[] Rows)> read)
    {
        lock (gate)
        {
            foreach (var (day, version, rows) in read)
            {
                var settled = !days.TryGetValue(day, out var before) || before.Version == version;
                rowsHeld -= before.Rows?.Length ?? 0;
                days[day] = (version, settled ? rows : null);
                rowsHeld += settled ? rows.Length : 0;
                daysRead++;
            }

            while (days.Count > MaxDays)
            {
                RemoveOldestDay();
            }

            KeepWithinBudget();
        }
    }

    /// <summary>The lines held for the month starting <paramref name="month"/>, with the versions of its days they were read at.</summary>
    public MonthLines? Month(DateOnly month)
    {
        lock (gate)
        {
            if (!months.TryGetValue(month, out var held))
            {
                return null;
            }

            held.LastUse = ++uses;
            return held;
        }
    }

    /// <summary>
    /// Keeps a month's lines just read, unless the versions of its days moved since it was last read (the current month
    /// under ingest): then only the versions are held, and the lines are kept once a read finds them again (as for days,
    /// above). The least recently used month goes beyond <see cref="MaxMonths"/>.
    /// </summary>
    public void KeepMonth(DateOnly month, MonthLines lines)
    {
        lock (gate)
        {
            if (months.TryGetValue(month, out var before))
            {
                rowsHeld -= before.Rows?.Length ?? 0;
                if (!before.Days.SequenceEqual(lines.Days) || !before.Versions.SequenceEqual(lines.Versions))
                {
                    lines = new MonthLines(lines.Days, lines.Versions, null);
                }
            }

            lines.LastUse = ++uses;
            months[month] = lines;
            rowsHeld += lines.Rows?.Length ?? 0;
            while (months.Count > MaxMonths)
            {
                RemoveLeastRecentMonth();
            }

            KeepWithinBudget();
        }
    }

    // Under the lock: the oldest days go first, then the least recently used months.
    private void KeepWithinBudget()
    {
        while (rowsHeld > maxRows && days.Count + months.Count > 0)
        {
            if (days.Count > 0)
            {
                RemoveOldestDay();
            }
            else
            {
                RemoveLeastRecentMonth();
            }
        }
    }

    private void RemoveOldestDay()
    {
        var oldest = days.Keys.Min();
        rowsHeld -= days[oldest].Rows?.Length ?? 0;
        days.Remove(oldest);
    }

    private void RemoveLeastRecentMonth()
    {
        var month = months.MinBy(m => m.Value.LastUse).Key;
        rowsHeld -= months[month].Rows?.Length ?? 0;
        months.Remove(month);
    }

    /// <summary>Every user's folded lines of one month (in statement order; null: not kept), and the versions of the month's days they were read at.</summary>
    internal sealed class MonthLines(DateOnly[] days, long[] versions, UserEndpointUsage[]? rows)
    {
        public DateOnly[] Days { get; } = days;

        public long[] Versions { get; } = versions;

        public UserEndpointUsage[]? Rows { get; } = rows;

        public long LastUse { get; set; }
    }
}
