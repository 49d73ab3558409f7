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

    [Fact]
    public void RecordsTheWriterReportsStored_AreNoLongerCountedByTheLedger()
    {
        var ledger = new BudgetLedger();
        var first = Record(0.3m);
        var second = Record(0.2m);
        var other = UsageStoreConformanceTests.Call("u2", At, "/api/hint", "gpt-4o-mini", 100, 400, 0.5m);
        ledger.Observe(first, At, TimeSpan.FromMinutes(10));
        ledger.Observe(second, At, TimeSpan.FromMinutes(10));
        ledger.Observe(other, At, TimeSpan.FromMinutes(10));
        Assert.Equal(0.5m, ledger.For("u1").PendingSince(At.AddDays(-1)).Cost);

        // A batch holding one of u1's records and a user the ledger never saw.
        ledger.Stored([first, UsageStoreConformanceTests.Call("u9", At, "/api/hint", "gpt-4o-mini", 1, 1, 0.1m)]);
        Assert.Equal(0.2m, ledger.For("u1").PendingSince(At.AddDays(-1)).Cost);
        Assert.Equal(0.5m, ledger.For("u2").PendingSince(At.AddDays(-1)).Cost);
        ledger.Stored([second, other]);
        Assert.Equal(0, ledger.For("u1").PendingCount);
        Assert.Equal(0, ledger.For("u2").PendingCount);
    }

    [Fact]
    public void RecordsNeverReportedStored_AreDroppedInBulkOnceManyArePastTheRetention()
    {
        var ledger = new BudgetLedger();
        var retention = TimeSpan.FromMinutes(10);
        for (var i = 0; i < BudgetLedger.UserLedger.PruneAtCount; i++)
        {
            ledger.Observe(Record(0.001m), At.AddSeconds(i * 0.1), retention);
        }

        // All within the retention: kept, however many.
        ledger.Observe(Record(0.001m), At.AddMinutes(5), retention);
        Assert.Equal(BudgetLedger.UserLedger.PruneAtCount + 1, ledger.For("u1").PendingCount);

        // Twelve minutes on, the first 1,024 (all within the first two minutes) are gone; the five-minute one and the new one stay.
        ledger.Observe(Record(0.001m), At.AddMinutes(12), retention);
        Assert.Equal(2, ledger.For("u1").PendingCount);
    }

    private static UsageRecord Record(decimal cost) => UsageStoreConformanceTests.Call("u1", At, "/api/hint", "gpt-4o-mini", 100, 400, cost);
}
