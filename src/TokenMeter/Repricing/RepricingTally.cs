using TokenMeter.Pricing;

namespace TokenMeter.Repricing;

/// <summary>Counts a re-pricing record by record, the same way for every store.</summary>
public sealed class RepricingTally
{
    private readonly RepricingPlan _plan;
    private readonly Dictionary<string, (string? Model, long Records, decimal Old, decimal New)> _byModel = new(StringComparer.Ordinal);
    private readonly SortedDictionary<DateOnly, (long Records, decimal Difference)> _closed = [];
    private long _records;
    private decimal _old;
    private decimal _new;

    /// <summary>Starts counting for a plan.</summary>
    /// <param name="plan">The re-pricing.</param>
    public RepricingTally(RepricingPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        _plan = plan;
    }

    /// <summary>
    /// Prices one stored record. Returns the re-priced record when it changes and may be written;
    /// null when it does not change, or lies in a closed month (then only its difference is counted).
    /// </summary>
    /// <param name="record">The stored record.</param>
    /// <returns>The record to write, or null.</returns>
    public UsageRecord? Add(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (_plan.Request.OnlyUnpriced && record.CostUsd is not null)
        {
            return null;
        }

        var repriced = _plan.Price(record);
        if (repriced.CostUsd == record.CostUsd
            && string.Equals(repriced.PriceId, record.PriceId, StringComparison.Ordinal)
            && CostSourceNames.Effective(repriced) == CostSourceNames.Effective(record))
        {
            return null;
        }

        var oldCost = record.CostUsd ?? 0m;
        var newCost = repriced.CostUsd ?? 0m;
        var day = DateOnly.FromDateTime(record.CreatedAt.UtcDateTime);
        if (day < _plan.FirstOpenMonth)
        {
            var month = new DateOnly(day.Year, day.Month, 1);
            _closed[month] = _closed.TryGetValue(month, out var c) ? (c.Records + 1, c.Difference + newCost - oldCost) : (1, newCost - oldCost);
            return null;
        }

        _records++;
        _old += oldCost;
        _new += newCost;
        var key = record.Model ?? string.Empty;
        _byModel[key] = _byModel.TryGetValue(key, out var m) ? (m.Model, m.Records + 1, m.Old + oldCost, m.New + newCost) : (record.Model, 1, oldCost, newCost);
        return repriced with { CostSource = CostSourceNames.Effective(repriced) };
    }

    /// <summary>The outcome.</summary>
    /// <returns>The result, with the plan's id unless it is a dry run.</returns>
    public RepricingResult ToResult() => new(
        _plan.Request.DryRun ? null : _plan.Id,
        _plan.Request.DryRun,
        _records,
        _old,
        _new,
        [.. _byModel.Values
            .Select(m => new RepricingModelTotals(m.Model, m.Records, m.Old, m.New))
            .OrderByDescending(m => Math.Abs(m.NewCostUsd - m.OldCostUsd))
            .ThenBy(m => m.Model, StringComparer.Ordinal)],
        [.. _closed.Select(c => new RepricingClosedMonth(c.Key, c.Value.Records, c.Value.Difference))]);

    /// <summary>The stored form of an applied re-pricing.</summary>
    /// <returns>The entry.</returns>
    public RepricingEntry ToEntry() => new(_plan.Id, _plan.At, _plan.Request.By, _plan.Request.From, _plan.Request.To, _plan.Request.OnlyUnpriced, _records, _old, _new);
}
