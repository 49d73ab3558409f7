using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace HomeworkApi.Hosting;

/// <summary><c>/health</c>: the database answers a query (or there is none: in-memory mode).</summary>
internal sealed class DatabaseHealthCheck(IServiceProvider services) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (services.GetService<HomeworkDatabase>()?.DataSource is not { } dataSource)
        {
            return HealthCheckResult.Healthy("In-memory storage (no database configured).");
        }

        try
        {
            await using var command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken);
            return HealthCheckResult.Healthy("PostgreSQL answers.");
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return HealthCheckResult.Unhealthy("PostgreSQL does not answer.", ex);
        }
    }
}
