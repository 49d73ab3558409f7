using TokenMeter.Attribution;

namespace TokenMeter.Metering;

/// <summary>The manual recording API over the <see cref="UsageMeter"/>.</summary>
internal sealed class UsageRecorder(UsageMeter meter) : IUsageRecorder
{
    public ValueTask<UsageRecord> RecordAsync(ManualUsage usage, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(usage);
        ArgumentException.ThrowIfNullOrWhiteSpace(usage.Model);
        ArgumentOutOfRangeException.ThrowIfNegative(usage.InputTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(usage.OutputTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(usage.CachedInputTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(usage.ReasoningTokens);
        cancellationToken.ThrowIfCancellationRequested();

        var scope = UsageScope.Current;
        var createdAt = usage.CreatedAt ?? meter.TimeProvider.GetUtcNow();
        var record = UsageMeter.NewRecord(createdAt, scope, null);
        if (usage.Context is { } context)
        {
            record = record with
            {
                UserId = context.UserId ?? record.UserId,
                Endpoint = context.Endpoint ?? record.Endpoint,
                SessionId = context.SessionId ?? record.SessionId,
                ProblemId = context.ProblemId ?? record.ProblemId,
                Tags = context.Tags ?? record.Tags,
            };
        }

        record = record with
        {
            Operation = usage.Operation,
            RequestModel = usage.Model,
            Model = usage.Model,
            ServiceTier = usage.ServiceTier,
            InputTokens = usage.InputTokens,
            CachedInputTokens = usage.CachedInputTokens,
            OutputTokens = usage.OutputTokens,
            ReasoningTokens = usage.ReasoningTokens,
            TotalTokens = usage.TotalTokens ?? usage.InputTokens + usage.OutputTokens,
            DurationMs = usage.Duration.TotalMilliseconds,
            Status = usage.Status,
            Streaming = usage.Streaming,
        };

        return ValueTask.FromResult(meter.Record(record, scope));
    }
}
