namespace TokenMeter.Writing;

/// <summary>
/// Told by the background writer each time a batch of records is in the store (from the queue or
/// replayed from the spool), on the writer's loop: implementations only note the batch and return.
/// </summary>
internal interface IUsageStoredObserver
{
    void OnStored(IReadOnlyList<UsageRecord> records);
}
