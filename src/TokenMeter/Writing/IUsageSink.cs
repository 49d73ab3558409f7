namespace TokenMeter.Writing;

/// <summary>Takes finished records (priced, or built when taken) for storage. Never blocks and never throws.</summary>
internal interface IUsageSink
{
    /// <summary>Queues a record for the background writer.</summary>
    /// <param name="record">The record.</param>
    void Enqueue(UsageRecord record);

    /// <summary>Queues a finished call whose record the writer builds when it takes it.</summary>
    /// <param name="usage">The call.</param>
    void Enqueue(Metering.DeferredUsage usage);
}
