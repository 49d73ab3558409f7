namespace TokenMeter;

/// <summary>Names of TokenMeter's health checks.</summary>
public static class TokenMeterHealthChecks
{
    /// <summary>The writer's check: spool backlog, queue depth, last successful write.</summary>
    public const string WriterCheckName = "tokenmeter-writer";

    /// <summary>
    /// The store's check. A store package registers its own check as a keyed
    /// <c>IHealthCheck</c> service with this key; without one, the store counts as healthy.
    /// </summary>
    public const string StoreCheckName = "tokenmeter-store";
}
