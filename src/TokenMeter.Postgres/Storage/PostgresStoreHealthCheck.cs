using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Health of the PostgreSQL store: Unhealthy until the schema is installed, and when the database
/// does not answer a trivial query within the command timeout; Healthy otherwise.
/// </summary>
internal sealed class PostgresStoreHealthCheck(PostgresStoreContext context) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext healthContext, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["schema"] = context.Schema, ["schemaInstalled"] = context.IsReady };
        try
        {
            using var command = context.DataSource.CreateCommand("SELECT 1");
            command.CommandTimeout = context.CommandTimeout;
            await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            return HealthCheckResult.Unhealthy($"The PostgreSQL usage store is unreachable: {ex.Message}", data: data);
        }

        return context.IsReady
            ? HealthCheckResult.Healthy($"PostgreSQL reachable; schema \"{context.Schema}\" installed.", data)
            : HealthCheckResult.Unhealthy($"PostgreSQL reachable, but the schema \"{context.Schema}\" is not installed yet.", data: data);
    }
}
