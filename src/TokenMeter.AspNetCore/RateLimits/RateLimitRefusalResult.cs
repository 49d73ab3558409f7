using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using TokenMeter.RateLimits;

namespace TokenMeter.AspNetCore.RateLimits;

/// <summary>
/// The answer to a refused call: 429 with <c>Retry-After</c> in whole seconds and a problem of type
/// <see cref="RateLimitProblemTypes.RateLimited"/> whose detail names the limit; or 503 with
/// <see cref="RateLimitProblemTypes.Unavailable"/> when the limits could not be checked.
/// </summary>
internal sealed class RateLimitRefusalResult(RateLimitKind kind, long limit, TimeSpan retryAfter, long? tokensUsed) : IResult
{
    public static RateLimitRefusalResult From(RateLimitDecision decision) =>
        new(decision.RefusedBy ?? RateLimitKind.Unavailable, decision.Limit, decision.RetryAfter, decision.TokensUsed);

    public long RetryAfterSeconds => Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var seconds = RetryAfterSeconds;
        httpContext.Response.Headers[HeaderNames.RetryAfter] = seconds.ToString(CultureInfo.InvariantCulture);
        if (kind == RateLimitKind.Unavailable)
        {
            return TypedResults.Problem(
                detail: "Rate limits could not be checked, so the call was not made. Try again shortly.",
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "Rate limit check unavailable",
                type: RateLimitProblemTypes.Unavailable).ExecuteAsync(httpContext);
        }

        var extensions = new Dictionary<string, object?>
        {
            ["limit"] = kind == RateLimitKind.Tokens ? "tokens" : "requests",
            ["retryAfterSeconds"] = seconds,
        };
        string detail;
        if (kind == RateLimitKind.Tokens)
        {
            extensions["tokensPerMinute"] = limit;
            extensions["tokensUsed"] = tokensUsed;
            detail = string.Create(CultureInfo.InvariantCulture, $"The limit of {limit} tokens per minute for this user is reached ({tokensUsed} tokens in the last minute); try again in {seconds} s.");
        }
        else
        {
            extensions["requestsPerMinute"] = limit;
            detail = string.Create(CultureInfo.InvariantCulture, $"The limit of {limit} requests per minute is reached; try again in {seconds} s.");
        }

        return TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status429TooManyRequests, title: "Rate limit reached.", type: RateLimitProblemTypes.RateLimited, extensions: extensions)
            .ExecuteAsync(httpContext);
    }
}
