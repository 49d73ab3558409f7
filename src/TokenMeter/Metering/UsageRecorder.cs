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
        ArgumentOutOfRangeException.ThrowIfNegative(usage.CacheWriteTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(usage.ReasoningTokens);
        cancellationToken.ThrowIfCancellationRequested();

        var scope = UsageScope.Current;
        var scoped = scope?.Context;

        // Values given with the usage win over those of the scope.
        var context = usage.Context is not { } given ? scoped : new UsageContext
        {
            UserId = given.UserId ?? scoped?.UserId,
            Endpoint = given.Endpoint ?? scoped?.Endpoint,
            SessionId = given.SessionId ?? scoped?.SessionId,
            ProblemId = given.ProblemId ?? scoped?.ProblemId,
            Tags = given.Tags ?? scoped?.Tags,
        };
        var tokens = new ParsedUsage
        {
            HasUsage = true,
            Model = usage.Model,
            ServiceTier = usage.ServiceTier,
            InputTokens = usage.InputTokens,
            CachedInputTokens = usage.CachedInputTokens,
            CacheWriteTokens = usage.CacheWriteTokens,
            OutputTokens = usage.OutputTokens,
            ReasoningTokens = usage.ReasoningTokens,
            TotalTokens = usage.TotalTokens ?? usage.InputTokens + usage.OutputTokens,
        };
        var record = UsageMeter.BuildRecord(
            usage.CreatedAt ?? meter.TimeProvider.GetUtcNow(),
            context,
            null,
            usage.Operation,
            usage.Model,
            tokens,
            usage.Duration.TotalMilliseconds,
            usage.Status,
            null,
            usage.Streaming);

        return ValueTask.FromResult(meter.Record(record, scope));
    }
}
