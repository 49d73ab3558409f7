using TokenMeter.Budgets;
using TokenMeter.Querying;
using TokenMeter.Repricing;
using TokenMeter.Storage;

namespace TokenMeter.Testing.Conformance;

/// <summary>A store under test: the four store interfaces (often one object) and what tears it down.</summary>
public sealed class ConformanceStore : IAsyncDisposable
{
    private readonly Func<ValueTask>? _dispose;

    /// <summary>Wraps one object that implements all four interfaces.</summary>
    public static ConformanceStore Of<TStore>(TStore store, Func<ValueTask>? dispose = null)
        where TStore : IUsageStore, IUsageQueries, IBudgetStore, IDeliveryLog, IUsageRepricingStore =>
        new(store, store, store, store, dispose) { Repricing = store };

    /// <summary>Wraps separate implementations.</summary>
    public ConformanceStore(IUsageStore usage, IUsageQueries queries, IBudgetStore budgets, IDeliveryLog deliveries, Func<ValueTask>? dispose = null)
    {
        Usage = usage;
        Queries = queries;
        Budgets = budgets;
        Deliveries = deliveries;
        _dispose = dispose;
    }

    public IUsageStore Usage { get; }

    public IUsageQueries Queries { get; }

    public IBudgetStore Budgets { get; }

    public IDeliveryLog Deliveries { get; }

    public IUsageRepricingStore? Repricing { get; init; }

    public ValueTask DisposeAsync() => _dispose?.Invoke() ?? ValueTask.CompletedTask;
}
