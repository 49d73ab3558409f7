using System.Globalization;
using HomeworkApi.Hosting;
using Microsoft.Net.Http.Headers;

namespace HomeworkApi.RateLimits;

/// <summary>
/// The 429 answer of a refused homework request: <c>Retry-After</c> in whole seconds (at least 1,
/// rounded up to when a permit or enough tokens free up) and a problem of type
/// <see cref="Problems.RateLimitedType"/> whose detail names the limit.
/// </summary>
internal sealed record RateLimitRefusal(RateLimitKind Kind, long Limit, long RetryAfterSeconds, long? TokensUsed) : IResult
{
    public Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.Headers[HeaderNames.RetryAfter] = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        var extensions = new Dictionary<string, object?>
        {
            ["limit"] = Kind == RateLimitKind.Tokens ? "tokens" : "requests",
            ["retryAfterSeconds"] = RetryAfterSeconds,
        };
        string detail;
        if (Kind == RateLimitKind.Tokens)
        {
            extensions["tokensPerMinute"] = Limit;
            extensions["tokensUsed"] = TokensUsed;
            detail = string.Create(CultureInfo.InvariantCulture, $"The limit of {Limit} tokens per minute for this user is reached ({TokensUsed} tokens in the last minute); try again in {RetryAfterSeconds} s.");
        }
        else
        {
            extensions["requestsPerMinute"] = Limit;
            detail = string.Create(CultureInfo.InvariantCulture, $"The limit of {Limit} requests per minute is reached; try again in {RetryAfterSeconds} s.");
        }

        return Problems.RateLimited(detail, extensions).ExecuteAsync(httpContext);
    }
}
