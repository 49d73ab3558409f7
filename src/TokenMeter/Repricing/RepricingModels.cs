namespace TokenMeter.Repricing;

/// <summary>What to re-price: the records of a range of UTC days, all of them or only the unpriced ones.</summary>
/// <param name="From">First UTC day.</param>
/// <param name="To">Last UTC day (inclusive).</param>
/// <param name="OnlyUnpriced">Only records without a cost (a model that had no price when they were recorded).</param>
/// <param name="DryRun">Report what would change without changing anything.</param>
public sealed record RepricingRequest(DateOnly From, DateOnly To, bool OnlyUnpriced = false, bool DryRun = true)
{
    /// <summary>Who asks (stored with an applied re-pricing), e.g. the admin's user name.</summary>
    public string? By { get; init; }
}

/// <summary>The totals of one model in a re-pricing.</summary>
/// <param name="Model">The model.</param>
/// <param name="Records">Records whose price changes.</param>
/// <param name="OldCostUsd">Their cost before (unpriced as zero).</param>
/// <param name="NewCostUsd">Their cost after (unpriced as zero).</param>
public sealed record RepricingModelTotals(string? Model, long Records, decimal OldCostUsd, decimal NewCostUsd);

/// <summary>A month with a closed statement inside the range: left unchanged, with the difference a re-pricing would have made.</summary>
/// <param name="Month">The month's first day.</param>
/// <param name="Records">Records whose price would change.</param>
/// <param name="DifferenceUsd">New cost minus old cost of those records.</param>
public sealed record RepricingClosedMonth(DateOnly Month, long Records, decimal DifferenceUsd);

/// <summary>
/// The outcome of a re-pricing: the records whose cost, price or cost source changes (or would,
/// on a dry run), with their old and new cost in total and by model, and the closed months left alone.
/// </summary>
/// <param name="Id">The id of the stored re-pricing; null for a dry run.</param>
/// <param name="DryRun">Whether nothing was changed.</param>
/// <param name="Records">Records changed (or that would be).</param>
/// <param name="OldCostUsd">Their cost before.</param>
/// <param name="NewCostUsd">Their cost after.</param>
/// <param name="ByModel">The same by model, costliest change first.</param>
/// <param name="ClosedMonths">Months with a closed statement in the range, not changed.</param>
public sealed record RepricingResult(
    Guid? Id,
    bool DryRun,
    long Records,
    decimal OldCostUsd,
    decimal NewCostUsd,
    IReadOnlyList<RepricingModelTotals> ByModel,
    IReadOnlyList<RepricingClosedMonth> ClosedMonths);

/// <summary>An applied re-pricing, as stored.</summary>
/// <param name="Id">Its id.</param>
/// <param name="At">When it was applied.</param>
/// <param name="By">Who applied it.</param>
/// <param name="From">First UTC day.</param>
/// <param name="To">Last UTC day.</param>
/// <param name="OnlyUnpriced">Whether only unpriced records were considered.</param>
/// <param name="Records">Records changed.</param>
/// <param name="OldCostUsd">Their cost before.</param>
/// <param name="NewCostUsd">Their cost after.</param>
public sealed record RepricingEntry(
    Guid Id,
    DateTimeOffset At,
    string? By,
    DateOnly From,
    DateOnly To,
    bool OnlyUnpriced,
    long Records,
    decimal OldCostUsd,
    decimal NewCostUsd);

/// <summary>A re-pricing as a store runs it: the request, the new price of a record, and which months are closed.</summary>
/// <param name="Request">What to re-price.</param>
/// <param name="Id">The id to store an applied re-pricing under.</param>
/// <param name="At">When it runs.</param>
/// <param name="FirstOpenMonth">The first day of the first month without a closed statement: earlier records are never changed.</param>
/// <param name="Price">Prices a stored record against the current prices.</param>
public sealed record RepricingPlan(RepricingRequest Request, Guid Id, DateTimeOffset At, DateOnly FirstOpenMonth, Func<UsageRecord, UsageRecord> Price);
