using TokenMeter.Metering;

namespace TokenMeter.Budgets;

/// <summary>Counts each metered call against its user's budget the moment it is priced, before the writer stores it.</summary>
internal sealed class BudgetUsageObserver(BudgetGuard guard) : IUsageObserver
{
    public void OnUsage(UsageRecord record) => guard.Observe(record);
}
