namespace TokenMeter.AspNetCore.RateLimits;

/// <summary>The problem details <c>type</c> URIs of rate-limit refusals.</summary>
public static class RateLimitProblemTypes
{
    /// <summary>429: a per-user requests- or tokens-per-minute limit is reached.</summary>
    public const string RateLimited = "https://tokenmeter.dev/problems/rate-limited";

    /// <summary>503: the limits could not be checked and the limiter fails closed.</summary>
    public const string Unavailable = "https://tokenmeter.dev/problems/rate-limit-unavailable";
}
