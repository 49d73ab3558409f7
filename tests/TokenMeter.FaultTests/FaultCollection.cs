using TokenMeter.Testing.Postgres;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace TokenMeter.FaultTests;

/// <summary>
/// Every fault test runs in this one collection, one at a time: they stop and start one throwaway
/// PostgreSQL server, start the sample as a child process, and load the machine.
/// </summary>
[CollectionDefinition(Name)]
public sealed class FaultCollection : ICollectionFixture<PostgresServerFixture>
{
    public const string Name = "faults";
}

/// <summary>A PostgreSQL cluster owned by this test run (never <c>TOKENMETER_TEST_POSTGRES</c>'s: the tests stop it).</summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await PostgresServer.StartAsync();
        Assert.True(Server.IsOwned, $"The fault tests stop and start PostgreSQL, so they need their own cluster: unset {PostgresServer.EnvironmentVariable}.");
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
