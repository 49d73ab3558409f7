using TokenMeter.Metering;
using TokenMeter.Writing;

namespace TokenMeter.Budgets;

/// <summary>Counts each metered call against its user's budget the moment it is priced, before the writer stores it.</summary>
internal sealed class BudgetUsageObserver(BudgetGuard guard) : IUsageObserver
{
    public void OnUsage(UsageRecord record) => guard.Observe(record);
}

/// <summary>Tells the budget ledger which records the writer has stored, so it stops counting them itself.</summary>
internal sealed class BudgetStoredObserver(BudgetGuard guard) : IUsageStoredObserver
{
    public void OnStored(IReadOnlyList<UsageRecord> records) => guard.Ledger.Stored(records);
}
