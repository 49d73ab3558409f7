using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace TokenMeter.Writing;

/// <summary>
/// Health of the background writer: Unhealthy when the store has refused writes for longer than
/// <see cref="UnhealthyAfter"/>; Degraded while records wait in the spool, the store is failing, or
/// the in-memory queue is more than half full; Healthy otherwise.
/// </summary>
internal sealed class UsageWriterHealthCheck(UsageWriter writer, TimeProvider timeProvider) : IHealthCheck
{
    /// <summary>How long the store may refuse writes before the writer counts as unhealthy.</summary>
    public static readonly TimeSpan UnhealthyAfter = TimeSpan.FromMinutes(1);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var queueLength = writer.QueueLength;
        var spooledFiles = writer.SpooledFiles;
        var storeAvailable = writer.StoreAvailable;
        var lastWrite = writer.LastSuccessfulWrite;
        var data = new Dictionary<string, object>
        {
            ["queueLength"] = queueLength,
            ["queueCapacity"] = writer.QueueCapacity,
            ["spooledFiles"] = spooledFiles,
            ["storeAvailable"] = storeAvailable,
            ["lastSuccessfulWrite"] = lastWrite?.ToString("O", System.Globalization.CultureInfo.InvariantCulture) ?? "never",
            ["spoolDirectory"] = writer.SpoolDirectory,
        };

        var failingSince = lastWrite ?? writer.Started ?? timeProvider.GetUtcNow();
        if (!storeAvailable && timeProvider.GetUtcNow() - failingSince > UnhealthyAfter)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(
                $"The usage store has refused writes since {failingSince:O}; {spooledFiles} spool files and {queueLength} queued records wait.", data: data));
        }

        if (!storeAvailable || spooledFiles > 0)
        {
            return Task.FromResult(HealthCheckResult.Degraded(
                $"{spooledFiles} spool files wait to be replayed into the usage store (store {(storeAvailable ? "available" : "failing")}).", data: data));
        }

        if (queueLength > writer.QueueCapacity / 2)
        {
            return Task.FromResult(HealthCheckResult.Degraded($"The usage queue is more than half full ({queueLength} of {writer.QueueCapacity}).", data: data));
        }

        return Task.FromResult(HealthCheckResult.Healthy($"Usage records are stored ({queueLength} queued).", data));
    }
}

/// <summary>Health of a store that has no check of its own (the in-memory store).</summary>
internal sealed class InMemoryStoreHealthCheck : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(HealthCheckResult.Healthy("In-memory usage store (records are lost on restart)."));
}
