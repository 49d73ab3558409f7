using TokenMeter.Attribution;

namespace TokenMeter.Metering;

/// <summary>A call made some other way than through a metered client, to record with <see cref="IUsageRecorder"/>.</summary>
public sealed record ManualUsage
{
    /// <summary>The model that served the call; this is what is priced.</summary>
    public required string Model { get; init; }

    /// <summary>The kind of call; one of <see cref="UsageOperation"/>. Default <see cref="UsageOperation.Chat"/>.</summary>
    public string Operation { get; init; } = UsageOperation.Chat;

    /// <summary>Input tokens, cached ones included.</summary>
    public long InputTokens { get; init; }

    /// <summary>Cached input tokens (part of <see cref="InputTokens"/>).</summary>
    public long CachedInputTokens { get; init; }

    /// <summary>Input tokens written to the prompt cache (part of <see cref="InputTokens"/>).</summary>
    public long CacheWriteTokens { get; init; }

    /// <summary>Output tokens, reasoning ones included.</summary>
    public long OutputTokens { get; init; }

    /// <summary>Reasoning tokens (part of <see cref="OutputTokens"/>).</summary>
    public long ReasoningTokens { get; init; }

    /// <summary>Total tokens; null means input + output.</summary>
    public long? TotalTokens { get; init; }

    /// <summary>The service tier, when known.</summary>
    public string? ServiceTier { get; init; }

    /// <summary>How long the call took.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>How the call ended. Default <see cref="UsageStatus.Ok"/>.</summary>
    public UsageStatus Status { get; init; } = UsageStatus.Ok;

    /// <summary>Whether the reply was streamed.</summary>
    public bool Streaming { get; init; }

    /// <summary>When the call started; null means now.</summary>
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>Attribution; values set here win over those of the current <see cref="UsageScope"/>.</summary>
    public UsageContext? Context { get; init; }
}
