namespace TokenMeter.Attribution;

/// <summary>
/// Who and what OpenAI calls are for. Any property left null is inherited from the enclosing
/// <see cref="UsageScope"/>; tags are merged, inner values winning.
/// </summary>
public sealed record UsageContext
{
    /// <summary>The user calls are charged to.</summary>
    public string? UserId { get; init; }

    /// <summary>The feature or route label, e.g. <c>/api/analyze</c>.</summary>
    public string? Endpoint { get; init; }

    /// <summary>The caller's session.</summary>
    public string? SessionId { get; init; }

    /// <summary>The problem (or other business object) the calls are about.</summary>
    public string? ProblemId { get; init; }

    /// <summary>Free-form tags recorded with every call.</summary>
    public IReadOnlyDictionary<string, string>? Tags { get; init; }
}
