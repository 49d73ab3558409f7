using Xunit;

namespace TokenMeter.Testing.Postgres;

/// <summary>
/// xunit class fixture: a fresh, empty database on the process-wide shared
/// <see cref="PostgresServer"/>, dropped when the test class is done. Use it as
/// <c>IClassFixture&lt;PostgresDatabaseFixture&gt;</c>, or in a collection definition of your own.
/// </summary>
public class PostgresDatabaseFixture : IAsyncLifetime
{
    private string? connectionString;

    /// <summary>The server the database lives on.</summary>
    public PostgresServer Server { get; private set; } = null!;

    /// <summary>Connection string of this fixture's database.</summary>
    public string ConnectionString => connectionString ?? throw new InvalidOperationException("The fixture is not initialized.");

    /// <summary>Creates another fresh database on the same server (dropped with the fixture).</summary>
    /// <returns>Its connection string.</returns>
    public async Task<string> CreateDatabaseAsync()
    {
        var created = await Server.CreateDatabaseAsync().ConfigureAwait(false);
        lock (extra)
        {
            extra.Add(created);
        }

        return created;
    }

    private readonly List<string> extra = [];

    /// <inheritdoc />
    public virtual async Task InitializeAsync()
    {
        Server = await PostgresServer.GetSharedAsync().ConfigureAwait(false);
        connectionString = await Server.CreateDatabaseAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public virtual async Task DisposeAsync()
    {
        string[] all;
        lock (extra)
        {
            all = [.. extra];
        }

        foreach (var cs in all.Append(connectionString).OfType<string>())
        {
            await Server.DropDatabaseAsync(cs).ConfigureAwait(false);
        }
    }
}
