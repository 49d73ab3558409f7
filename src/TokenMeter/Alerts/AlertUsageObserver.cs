using TokenMeter.Metering;

namespace TokenMeter.Alerts;

/// <summary>Hands every metered call to the alert monitor (queued; evaluated in the background).</summary>
internal sealed class AlertUsageObserver(AlertMonitor monitor) : IUsageObserver
{
    public void OnUsage(UsageRecord record) => monitor.Observe(record);
}
