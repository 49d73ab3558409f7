using System.Collections;
using TokenMeter.Querying;

namespace TokenMeter.Postgres.Querying;

/// <summary>
/// Every user's rows of the forecasts' bulk read as one read-only list over the users' own lists (each user's rows, in
/// user order), not copied into one array: the 50 days of 1,000 users are 50,000 rows, a 400 KB array that went to the
/// large object heap on every request, and that churn set off a full collection every ~17 requests. An index is looked
/// up in the run of the previous lookup first (the forecaster reads the list front to back), else by a binary search of
/// the runs' first indexes; that hint may be stale when threads share a list, and is checked before it is used.
/// </summary>
internal sealed class UserRuns : IReadOnlyList<UserDailyUsage>
{
    private readonly List<UserDailyUsage>[] runs;

    // starts[i]: the index of runs[i]'s first row; starts[^1]: the count. Every run has a row.
    private readonly int[] starts;
    private int hint;

    public UserRuns(List<UserDailyUsage>[] runs)
    {
        this.runs = runs;
        starts = new int[runs.Length + 1];
        for (var i = 0; i < runs.Length; i++)
        {
            starts[i + 1] = starts[i] + runs[i].Count;
        }
    }

    public int Count => starts[^1];

    public UserDailyUsage this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
            var run = hint;
            if (index < starts[run] || index >= starts[run + 1])
            {
                run = Array.BinarySearch(starts, index);
                run = run < 0 ? ~run - 1 : run;
                hint = run;
            }

            return runs[run][index - starts[run]];
        }
    }

    public IEnumerator<UserDailyUsage> GetEnumerator() => runs.SelectMany(r => r).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
