using TokenMeter.Testing.Scenarios;
using Xunit.Abstractions;

namespace TokenMeter.FaultTests;

/// <summary>docs/reliability.md: nothing lost while the store is down; metering never blocks or throws into the caller.</summary>
[Collection(FaultCollection.Name)]
public sealed class StoreOutageTests(PostgresServerFixture postgres, ITestOutputHelper output)
{
    [Fact]
    public async Task PostgresStoppedUnderMeteredLoad_ThenStarted_NothingLost_NoCallerErrors_NoDuplicates_SpoolDrained()
    {
        var o = await FaultScenarios.StoreOutageAsync(postgres.Server, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1), callers: 4, maxCalls: 1_000_000, output.WriteLine);
        foreach (var line in o.Report())
        {
            output.WriteLine(line);
        }

        Assert.True(o.Calls > 0);
        Assert.Equal(0, o.CallerErrors);
        Assert.Equal(o.Calls, o.Rows);
        Assert.Equal(o.Rows, o.DistinctIds);
        Assert.True(o.Spooled > 0, "the outage never reached the writer");
        Assert.Equal(o.Spooled, o.Replayed);
        Assert.Equal(0, o.SpoolFilesAtEnd);
        Assert.Empty(o.Failures);
    }
}
