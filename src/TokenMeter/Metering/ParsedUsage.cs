namespace TokenMeter.Metering;

/// <summary>What a reply (or one of its stream events) said about usage.</summary>
internal struct ParsedUsage
{
    public bool HasUsage;
    public string? Model;
    public string? ServiceTier;
    public string? EventType;
    public long InputTokens;
    public long CachedInputTokens;
    public long CacheWriteTokens;
    public long ImageInputTokens;
    public long OutputTokens;
    public long ReasoningTokens;
    public long AudioInputTokens;
    public long AudioOutputTokens;
    public long TotalTokens;
    public double? DurationSeconds;

    /// <summary>Set before parsing an images reply: count the items of its <c>data</c> array into <see cref="Images"/>.</summary>
    public bool CountData;
    public int Images;
}
