namespace TokenMeter.Writing;

/// <summary>Takes finished, priced records for storage. Never blocks and never throws.</summary>
internal interface IUsageSink
{
    /// <summary>Queues a record for the background writer.</summary>
    /// <param name="record">The record.</param>
    void Enqueue(UsageRecord record);
}
