using TokenMeter.Budgets;
using TokenMeter.Testing.Conformance;

namespace TokenMeter.Tests.Budgets;

/// <summary>Which hold settles which record when one instance has several calls of a user in flight.</summary>
public sealed class BudgetLedgerTests
{
    private static readonly DateTimeOffset At = new(2026, 11, 25, 6, 30, 0, TimeSpan.Zero);

    [Fact]
    public void ACallEndingFirst_SettlesItsOwnRecord_EvenWhenAnOlderCallIsStillInFlight()
    {
        var user = new BudgetLedger().For("u1");
        var older = new BudgetLedger.SharedHold(Guid.CreateVersion7());
        var newer = new BudgetLedger.SharedHold(Guid.CreateVersion7());
        user.Open(older);
        user.Open(newer);

        // The newer call's record comes first and its call ends while the older one is in flight:
        // its hold must carry the record, or releasing it would leave the record counted nowhere.
        var newerRecord = Record(0.3m);
        user.Attach(newerRecord);
        var (cost, tokens, records) = user.Close(newer);
        Assert.Equal(0.3m, cost);
        Assert.Equal(newerRecord.TotalTokens, tokens);
        Assert.Equal([newerRecord.Id], records.Select(r => r.Id));

        var olderRecord = Record(0.2m);
        user.Attach(olderRecord);
        Assert.Equal([olderRecord.Id], user.Close(older).Records.Select(r => r.Id));

        // With no call in flight a record is left to the store.
        user.Attach(Record(0.1m));
        var later = new BudgetLedger.SharedHold(Guid.CreateVersion7());
        user.Open(later);
        Assert.Empty(user.Close(later).Records);
    }

    private static UsageRecord Record(decimal cost) => UsageStoreConformanceTests.Call("u1", At, "/api/hint", "gpt-4o-mini", 100, 400, cost);
}
