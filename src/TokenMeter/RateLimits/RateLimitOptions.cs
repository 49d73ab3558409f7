namespace TokenMeter.RateLimits;

/// <summary>Options of <see cref="UserRateLimiter"/>, bound from <c>TokenMeter:RateLimits</c>.</summary>
public sealed class RateLimitOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:RateLimits";

    /// <summary>Requests per minute per partition (the charged user, or the client address when anonymous); 0 turns the limit off. Default 0.</summary>
    public int RequestsPerMinute { get; set; }

    /// <summary>Tokens per minute per user: each call reserves its estimate before it and settles to what it used after it; 0 turns the limit off. Default 0.</summary>
    public long TokensPerMinute { get; set; }

    /// <summary>
    /// When true, a call is refused (503) while the limits cannot be checked (the shared store is
    /// unreachable). Default false: the call proceeds, logged and counted as
    /// <c>tokenmeter.rate_limit.check_failures</c>.
    /// </summary>
    public bool FailClosed { get; set; }
}
