using TokenMeter.Querying;

namespace TokenMeter.Postgres.Querying;

/// <summary>
/// The folded rollup rows of the dashboards' two bulk reads kept in memory with the day versions they were read at
/// (<c>usage_day_versions</c>, migration 0014): every user's rows of a day (the forecasts), and every user's lines of a
/// month (the statements). A read asks the store for the versions of its days in the same statement as the rows it
/// still needs, so what it takes from here is exactly what the rollups hold in that statement's snapshot: a day whose
/// version moved (a late record folded into it, a re-pricing, any instance's fold) is read again, and what is pending
/// a fold is always read. A month's lines are also kept with the snapshot they were read in: when a day of the month
/// moved, only the lines written since that snapshot are read again (<c>written_by</c>, migration 0015) and put in
/// place of the kept ones (the month is read whole again after a line was deleted: <c>usage_line_removals</c>). One instance per <see cref="PostgresUsageQueries"/> (a singleton per store), shared by
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
    private long linesRead;
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

    /// <summary>How many months' lines have been read from the store (every line of a month read whole, else those written since).</summary>
    public long LinesRead
    {
        get
        {
            lock (gate)
            {
                return linesRead;
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
    /// Keeps a month's lines just read (whole, or the kept ones with those written since put in their place: the month in
    /// progress under ingest changes at every fold, a few users' lines at a time; <paramref name="read"/> of them were read
    /// from the store). The least recently used month goes beyond <see cref="MaxMonths"/>.
    /// </summary>
    public void KeepMonth(DateOnly month, MonthLines lines, int read)
    {
        lock (gate)
        {
            linesRead += read;
            if (months.TryGetValue(month, out var before))
            {
                rowsHeld -= before.Rows.Length;
            }

            lines.LastUse = ++uses;
            months[month] = lines;
            rowsHeld += lines.Rows.Length;
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
        rowsHeld -= months[month].Rows.Length;
        months.Remove(month);
    }

    /// <summary>
    /// Every user's folded lines of one month (in statement order), the versions of the month's days, the count of line
    /// removals (<c>usage_line_removals</c>) and the snapshot (<c>pg_current_snapshot()</c> as text) they were read at.
    /// </summary>
    internal sealed class MonthLines(DateOnly[] days, long[] versions, long removals, string snapshot, UserEndpointUsage[] rows)
    {
        public DateOnly[] Days { get; } = days;

        public long[] Versions { get; } = versions;

        public long Removals { get; } = removals;

        public string Snapshot { get; } = snapshot;

        public UserEndpointUsage[] Rows { get; } = rows;

        public long LastUse { get; set; }
    }
}
