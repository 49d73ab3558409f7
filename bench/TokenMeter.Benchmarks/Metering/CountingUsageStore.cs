using TokenMeter.Storage;

namespace TokenMeter.Benchmarks.Metering;

/// <summary>
/// A store that counts what the writer hands it and keeps nothing. The in-memory store keeps every
/// record for the life of the process, so over a long probe its ever-growing heap (garbage
/// collections of it) would be measured instead of metering; a real store keeps its rows elsewhere.
/// </summary>
public sealed class CountingUsageStore : IUsageStore
{
    private long _count;

    public long Count => Interlocked.Read(ref _count);

    public ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default)
    {
        Interlocked.Add(ref _count, records.Count);
        return ValueTask.FromResult(records.Count);
    }
}
