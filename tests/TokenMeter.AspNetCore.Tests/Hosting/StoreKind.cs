using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using TokenMeter.Postgres;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.AspNetCore.Tests.Hosting;

/// <summary>The API tests run once per store: the in-memory store by default, PostgreSQL in the Postgres* classes.</summary>
public abstract class StoreTestBase
{
    /// <summary>Prepares a fresh store for one app and returns how to register it (null: the in-memory default).</summary>
    internal virtual Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => Task.FromResult<Action<ITokenMeterBuilder>?>(null);

    internal async Task<TestApp> StartAsync(Action<WebApplicationBuilder>? configure = null, Action<WebApplication>? map = null)
        => await TestApp.StartAsync(configure, map, await PrepareStoreAsync());

    private static readonly SemaphoreSlim InstallGate = new(1, 1);
    private static readonly HashSet<string> Installed = [];

    /// <summary>
    /// The class's PostgreSQL database, emptied for each app: the schema is installed once up front
    /// (as a DBA would with the printed script), then every table but the migration history is truncated.
    /// </summary>
    internal static async Task<Action<ITokenMeterBuilder>?> PostgresStoreAsync(PostgresDatabaseFixture database)
    {
        var connectionString = database.ConnectionString;
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await InstallGate.WaitAsync();
        try
        {
            if (Installed.Add(connectionString))
            {
                await using var install = new NpgsqlCommand(PostgresSchema.GetCreationScript(), connection);
                await install.ExecuteNonQueryAsync();
            }
        }
        finally
        {
            InstallGate.Release();
        }

        await using var truncate = new NpgsqlCommand(
            """
            DO $$ DECLARE t text; BEGIN
              SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO t
              FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '%migration%';
              IF t IS NOT NULL THEN EXECUTE 'TRUNCATE ' || t; END IF;
            END $$;
            """,
            connection);
        await truncate.ExecuteNonQueryAsync();
        return builder => builder.AddPostgresStore(connectionString, o => o.InstallSchema = false);
    }
}
