namespace TokenMeter;

/// <summary>
/// One metered call: who it was for, what it used and what it cost. Immutable; identified by a
/// unique, time-ordered <see cref="Id"/> so that storing it twice never counts it twice.
/// </summary>
public sealed record UsageRecord
{
    /// <summary>Unique, time-ordered id (UUID version 7).</summary>
    public required Guid Id { get; init; }

    /// <summary>When the call started (UTC).</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The user the call is charged to; null for an anonymous call.</summary>
    public string? UserId { get; init; }

    /// <summary>The feature or route the call served, e.g. <c>/api/analyze</c>.</summary>
    public string? Endpoint { get; init; }

    /// <summary>The kind of call; one of <see cref="UsageOperation"/>.</summary>
    public string Operation { get; init; } = UsageOperation.Other;

    /// <summary>The model the request asked for.</summary>
    public string? RequestModel { get; init; }

    /// <summary>The model the reply reported (falls back to <see cref="RequestModel"/>); this is what is priced.</summary>
    public string? Model { get; init; }

    /// <summary>The service tier the reply reported (<c>default</c>, <c>flex</c>, <c>priority</c>, ...), when any.</summary>
    public string? ServiceTier { get; init; }

    /// <summary>Input (prompt) tokens, including cached and audio input tokens.</summary>
    public long InputTokens { get; init; }

    /// <summary>Input tokens served from the prompt cache; a part of <see cref="InputTokens"/>.</summary>
    public long CachedInputTokens { get; init; }

    /// <summary>Input tokens written to the prompt cache (billed at the cache-write price); a part of <see cref="InputTokens"/>.</summary>
    public long CacheWriteTokens { get; init; }

    /// <summary>Output (completion) tokens, including reasoning and audio output tokens.</summary>
    public long OutputTokens { get; init; }

    /// <summary>Reasoning tokens; a part of <see cref="OutputTokens"/>, never added to it again.</summary>
    public long ReasoningTokens { get; init; }

    /// <summary>Audio input tokens; a part of <see cref="InputTokens"/>.</summary>
    public long AudioInputTokens { get; init; }

    /// <summary>Audio output tokens; a part of <see cref="OutputTokens"/>.</summary>
    public long AudioOutputTokens { get; init; }

    /// <summary>Total tokens as the reply reported them (input + output when it reported none).</summary>
    public long TotalTokens { get; init; }

    /// <summary>Cost in US dollars; null when the model has no price (the record can be re-priced later).</summary>
    public decimal? CostUsd { get; init; }

    /// <summary>Identity of the price used, e.g. <c>gpt-4o/standard/2024-08-06</c>; null when unpriced.</summary>
    public string? PriceId { get; init; }

    /// <summary>Where <see cref="CostUsd"/> comes from: reported usage, estimated tokens, or no price.</summary>
    public CostSource CostSource { get; init; }

    /// <summary>Wall-clock duration of the call in milliseconds, to the last byte the caller read for a stream.</summary>
    public double DurationMs { get; init; }

    /// <summary>How the call ended.</summary>
    public UsageStatus Status { get; init; }

    /// <summary>The HTTP status of the reply, when one arrived.</summary>
    public int? HttpStatus { get; init; }

    /// <summary>Whether the reply was streamed.</summary>
    public bool Streaming { get; init; }

    /// <summary>The caller's session, when known.</summary>
    public string? SessionId { get; init; }

    /// <summary>The problem (or any business object) the call was about, when known.</summary>
    public string? ProblemId { get; init; }

    /// <summary>Free-form tags from the attribution scope; stored as a JSON object.</summary>
    public IReadOnlyDictionary<string, string>? Tags { get; init; }
}
