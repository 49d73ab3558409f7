namespace TokenMeter.Metering;

/// <summary>Takes finished records (priced, or built when taken) for storage. Never blocks and never throws.</summary>
internal interface IUsageSink
{
    /// <summary>Queues a record for the background writer.</summary>
    /// <param name="record">The record.</param>
    void Enqueue(UsageRecord record);

    /// <summary>Queues a finished call whose record the writer builds when it takes it.</summary>
    /// <param name="usage">The call.</param>
    void Enqueue(MeteredCall usage);

    /// <summary>
    /// True while the queue holds more than a couple of batches: the writer is behind, so calls are
    /// built on their callers' threads again instead of adding to the writer's work.
    /// </summary>
    bool IsBacklogged { get; }
}
