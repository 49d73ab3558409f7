using TokenMeter.Testing.Scenarios;
using Xunit.Abstractions;

namespace TokenMeter.FaultTests;

/// <summary>docs/reliability.md: 50 parallel calls at a user's budget limit spend at most one call past it (sample on PostgreSQL).</summary>
[Collection(FaultCollection.Name)]
public sealed class BudgetBurstTests(PostgresServerFixture postgres, ITestOutputHelper output)
{
    [Fact]
    public async Task FiftyParallelCallsAtTheLimit_ThroughTheSampleOnPostgres_SpendAtMostOneCallPastIt()
    {
        var o = await BudgetBurstScenario.RunAsync(postgres.Server, parallel: 50, rounds: 2, output.WriteLine);
        foreach (var line in o.Report())
        {
            output.WriteLine(line);
        }

        Assert.True(o.Refused > 0);
        Assert.InRange(o.StoredSpendUsd, o.LimitUsd - BudgetBurstScenario.MaxEstimateUsd, o.LimitUsd + o.CostPerCallUsd);
        Assert.Equal(o.Ok, o.ModelCalls);
        Assert.Equal(o.Ok, o.Rows);
        Assert.Empty(o.Failures);
    }
}
