using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace TokenMeter.Forecasting;

/// <summary>
/// One user's cost per day over a fixed range of days, in an array indexed by the day: what the users' forecasts look
/// up about a hundred times per user (month to date, the rate windows, the exhaustion date), a thousand users at a
/// time. A day outside the range, or with no row, is absent (as from a dictionary of the user's rows).
/// </summary>
internal sealed class DailyCosts(DateOnly first, DateOnly last) : IReadOnlyDictionary<DateOnly, decimal>
{
    private readonly decimal[] costs = new decimal[Math.Max(0, last.DayNumber - first.DayNumber + 1)];
    private readonly bool[] present = new bool[Math.Max(0, last.DayNumber - first.DayNumber + 1)];

    public int Count { get; private set; }

    public IEnumerable<DateOnly> Keys => this.Select(p => p.Key);

    public IEnumerable<decimal> Values => this.Select(p => p.Value);

    public decimal this[DateOnly key] => TryGetValue(key, out var cost) ? cost : throw new KeyNotFoundException($"No cost for {key:yyyy-MM-dd}.");

    /// <summary>Adds <paramref name="cost"/> to <paramref name="day"/>'s cost; false (nothing added) for a day outside the range.</summary>
    /// <remarks>
    /// Inlined into the users' loop (fifty rows per user, a thousand users at a time), where the cost is copied straight
    /// from the row to the array: through a call, the decimal went through the stack twice.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Add(DateOnly day, decimal cost)
    {
        var at = day.DayNumber - first.DayNumber;
        if ((uint)at < (uint)costs.Length && !present[at] && !decimal.IsNegative(cost))
        {
            // A day's first cost is what adding it to zero gives, without the addition: zero plus a cost without the sign
            // bit is that cost, scale and all. (The day's slot may hold an earlier user's cost, which Clear leaves.)
            present[at] = true;
            Count++;
            costs[at] = cost;
            return true;
        }

        return AddToDay(at, cost);
    }

    /// <summary>
    /// The rest of <see cref="Add"/>: a day outside the range, a day's second cost, or a first cost with the sign bit (-0
    /// among them, whose sum with zero need not keep its bits), added to zero as a sum of the day's costs would.
    /// </summary>
    private bool AddToDay(int at, decimal cost)
    {
        if ((uint)at >= (uint)costs.Length)
        {
            return false;
        }

        if (!present[at])
        {
            present[at] = true;
            Count++;
            costs[at] = 0m;
        }

        costs[at] += cost;
        return true;
    }

    /// <summary>
    /// The days from <paramref name="from"/> to <paramref name="to"/> of <paramref name="source"/> (what a projection over
    /// another dictionary reads), each day's cost as it is there.
    /// </summary>
    public static DailyCosts CopyOf(IReadOnlyDictionary<DateOnly, decimal> source, DateOnly from, DateOnly to)
    {
        var copy = new DailyCosts(from, to);
        for (var at = 0; at < copy.costs.Length; at++)
        {
            if (source.TryGetValue(from.AddDays(at), out var cost))
            {
                copy.present[at] = true;
                copy.Count++;
                copy.costs[at] = cost;
            }
        }

        return copy;
    }

    /// <summary>The day's cost; zero for a day outside the range or with no row (as a lookup in a dictionary of the rows).</summary>
    public decimal CostOrZero(DateOnly day)
    {
        var at = day.DayNumber - first.DayNumber;
        return (uint)at < (uint)costs.Length && present[at] ? costs[at] : 0m;
    }

    /// <summary>
    /// The costs of the days from <paramref name="from"/> to <paramref name="to"/> added to zero in day order, a day
    /// outside the range or with no row adding zero: the same additions as a sum of dictionary lookups, so the same bits.
    /// </summary>
    public decimal Sum(DateOnly from, DateOnly to)
    {
        var sum = 0m;
        for (int at = from.DayNumber - first.DayNumber, end = to.DayNumber - first.DayNumber; at <= end; at++)
        {
            if ((uint)at < (uint)costs.Length && present[at])
            {
                sum += costs[at];
            }
            else
            {
                sum += 0m;
            }
        }

        return sum;
    }

    /// <summary>
    /// The costs of the days from <paramref name="from"/> on as doubles, one per element of <paramref name="into"/>; a day
    /// outside the range or with no row costs 0.0, which is what zero converts to.
    /// </summary>
    public void CopyTo(DateOnly from, Span<double> into)
    {
        var at = from.DayNumber - first.DayNumber;
        for (var i = 0; i < into.Length; i++, at++)
        {
            into[i] = (uint)at < (uint)costs.Length && present[at] ? (double)costs[at] : 0.0;
        }
    }

    /// <summary>Removes every day's cost (the next user's days go in the same arrays; a day's cost is read only while it is present).</summary>
    public void Clear()
    {
        Array.Clear(present);
        Count = 0;
    }

    public bool ContainsKey(DateOnly key) => TryGetValue(key, out _);

    public bool TryGetValue(DateOnly key, [MaybeNullWhen(false)] out decimal value)
    {
        var at = key.DayNumber - first.DayNumber;
        if ((uint)at < (uint)costs.Length && present[at])
        {
            value = costs[at];
            return true;
        }

        value = default;
        return false;
    }

    public IEnumerator<KeyValuePair<DateOnly, decimal>> GetEnumerator()
    {
        for (var at = 0; at < costs.Length; at++)
        {
            if (present[at])
            {
                yield return new(first.AddDays(at), costs[at]);
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
