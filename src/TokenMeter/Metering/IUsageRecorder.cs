namespace TokenMeter.Metering;

/// <summary>Records a call made some other way than through a metered OpenAI client: priced, attributed to the current scope, queued for storage.</summary>
public interface IUsageRecorder
{
    /// <summary>Records one call.</summary>
    /// <param name="usage">What the call used.</param>
    /// <param name="cancellationToken">Cancels the recording.</param>
    /// <returns>The priced record, as it will be stored.</returns>
    ValueTask<UsageRecord> RecordAsync(ManualUsage usage, CancellationToken cancellationToken = default);
}
