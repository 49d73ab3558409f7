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

/// <summary>
/// A shared store that follows the records its holds count until they are stored: told of each
/// record attached to a call's hold (see <see cref="BudgetLedger.UserLedger.Attach"/>) as it is priced,
/// before the writer can store it.
/// </summary>
internal interface IHeldRecordWatch
{
    /// <summary>Follows a record a hold of this process will count until it is stored.</summary>
    /// <param name="record">The priced record.</param>
    void Watch(UsageRecord record);
}
