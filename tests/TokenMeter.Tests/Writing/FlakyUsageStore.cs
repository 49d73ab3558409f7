using TokenMeter.Storage;

namespace TokenMeter.Tests.Writing;

/// <summary>A store double for the writer's own tests: fails while told to, otherwise stores in a real in-memory store.</summary>
internal sealed class FlakyUsageStore : IUsageStore
{
    private int _failuresLeft;
    private int _appendCalls;

    public InMemoryUsageStore Inner { get; } = new();

    private volatile bool _down;

    /// <summary>When true, every append fails.</summary>
    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    public int AppendCalls => Volatile.Read(ref _appendCalls);

    public int StoredCount => Inner.Count;

    /// <summary>Fails the next <paramref name="count"/> appends.</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _failuresLeft, count);

    public ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _appendCalls);
        if (Down || Interlocked.Decrement(ref _failuresLeft) >= 0)
        {
            throw new InvalidOperationException("store unavailable (test)");
        }

        return Inner.AppendAsync(records, cancellationToken);
    }
}
