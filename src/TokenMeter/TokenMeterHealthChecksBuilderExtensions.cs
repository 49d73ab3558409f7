using Microsoft.Extensions.Diagnostics.HealthChecks;
using TokenMeter;
using TokenMeter.Writing;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds TokenMeter's health checks.</summary>
public static class TokenMeterHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds the checks <c>tokenmeter-writer</c> (spool backlog, queue depth, last successful
    /// write) and <c>tokenmeter-store</c> (for PostgreSQL: schema installed and database
    /// reachable), whatever the order of the TokenMeter registrations.
    /// </summary>
    /// <param name="builder">The health checks builder (<c>services.AddHealthChecks()</c>).</param>
    /// <param name="tags">Tags of both checks, for filtering endpoints; may be null.</param>
    /// <returns>The builder.</returns>
    /// <example>
    /// <code>
    /// builder.Services.AddHealthChecks().AddTokenMeter();
    /// app.MapHealthChecks("/health");
    /// </code>
    /// </example>
    public static IHealthChecksBuilder AddTokenMeter(this IHealthChecksBuilder builder, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Add(new HealthCheckRegistration(
            TokenMeterHealthChecks.WriterCheckName,
            sp => sp.GetService<UsageWriter>() is { } writer
                ? new UsageWriterHealthCheck(writer, sp.GetService<TimeProvider>() ?? TimeProvider.System)
                : throw new InvalidOperationException("TokenMeter is not registered: call services.AddTokenMeter()."),
            failureStatus: null,
            tags));
        builder.Add(new HealthCheckRegistration(
            TokenMeterHealthChecks.StoreCheckName,
            sp => sp.GetKeyedService<IHealthCheck>(TokenMeterHealthChecks.StoreCheckName) ?? new InMemoryStoreHealthCheck(),
            failureStatus: null,
            tags));
        return builder;
    }
}
