namespace TokenMeter.Storage;

/// <summary>Where usage records are kept. Implementations must be safe for concurrent use.</summary>
public interface IUsageStore
{
    /// <summary>
    /// Stores a batch of records, skipping any whose <see cref="UsageRecord.Id"/> is already stored,
    /// so that a replayed batch never counts twice. All or nothing: on failure no record of the
    /// batch is stored.
    /// </summary>
    /// <param name="records">The records to store.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>How many records were newly stored.</returns>
    ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default);
}
