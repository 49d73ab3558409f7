using TokenMeter.Storage;
using TokenMeter.Testing.Conformance;

namespace TokenMeter.Tests.Storage;

/// <summary>Runs the store conformance suite against the in-memory store.</summary>
public sealed class InMemoryUsageStoreConformanceTests : UsageStoreConformanceTests
{
    protected override ValueTask<ConformanceStore> CreateStoreAsync(TimeProvider timeProvider) =>
        ValueTask.FromResult(ConformanceStore.Of(new InMemoryUsageStore(timeProvider)));
}
