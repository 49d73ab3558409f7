using System.Collections;
using System.Diagnostics.CodeAnalysis;

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
    public bool Add(DateOnly day, decimal cost)
    {
        var at = day.DayNumber - first.DayNumber;
        if ((uint)at >= (uint)costs.Length)
        {
            return false;
        }

        if (!present[at])
        {
            present[at] = true;
            Count++;
        }

        costs[at] += cost;
        return true;
    }

    /// <summary>Removes every day's cost (the next user's days go in the same arrays).</summary>
    public void Clear()
    {
        Array.Clear(costs);
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
