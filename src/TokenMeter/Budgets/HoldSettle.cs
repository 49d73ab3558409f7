namespace TokenMeter.Budgets;

/// <summary>A budget hold to settle: the call's real cost and records (none: drop the hold).</summary>
/// <param name="Id">The hold.</param>
/// <param name="CostUsd">The real cost.</param>
/// <param name="Tokens">The real total tokens.</param>
/// <param name="Records">The call's records: id and creation time.</param>
/// <param name="KeepUntil">When the hold lapses if its records never arrive.</param>
/// <param name="Deadline">When the hold lapses anyway (its lease): a settle not written by then is moot.</param>
internal sealed record HoldSettle(Guid Id, decimal CostUsd, long Tokens, IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> Records, DateTimeOffset KeepUntil, DateTimeOffset Deadline);

/// <summary>Where a budget hold's settle goes: written after the response, with the settles of other calls.</summary>
internal interface IHoldSettleQueue
{
    /// <summary>Queues a hold's settle.</summary>
    /// <param name="settle">The settle.</param>
    void Enqueue(HoldSettle settle);
}
