using TokenMeter.Metering;
using TokenMeter.Writing;

namespace TokenMeter.Alerts;

/// <summary>Hands every metered call to the alert monitor (queued; evaluated in the background).</summary>
internal sealed class AlertUsageObserver(AlertMonitor monitor) : IUsageObserver
{
    public void OnUsage(UsageRecord record) => monitor.Observe(record);
}

/// <summary>Hands every batch the writer stored to the alert monitor, to evaluate again after the flush.</summary>
internal sealed class AlertStoredObserver(AlertMonitor monitor) : IUsageStoredObserver
{
    public void OnStored(IReadOnlyList<UsageRecord> records) => monitor.Stored(records);
}
