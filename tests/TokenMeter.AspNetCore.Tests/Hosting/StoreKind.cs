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

    /// <summary>A fresh, empty PostgreSQL database per app, on the shared throwaway server.</summary>
    internal static async Task<Action<ITokenMeterBuilder>?> PostgresStoreAsync(PostgresDatabaseFixture database)
    {
        var connectionString = await database.CreateDatabaseAsync();

        // Installed up front, as a DBA would with the printed script, so the app is ready as it starts.
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(PostgresSchema.GetCreationScript(), connection);
            await command.ExecuteNonQueryAsync();
        }

        return builder => builder.AddPostgresStore(connectionString, o => o.InstallSchema = false);
    }
}
