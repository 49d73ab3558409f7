using System.Globalization;
using System.Threading.RateLimiting;
using HomeworkApi.Hosting;
using Microsoft.AspNetCore.RateLimiting;

namespace HomeworkApi.Accounts;

/// <summary>
/// Throttles of the account routes, with the built-in ASP.NET Core rate limiter: registration per
/// client address (<c>Homework:RegistrationsPerHour</c>, default 10), sign-in per client address
/// (<c>Homework:LoginAttemptsPerMinute</c>, default 10) and per account name, whatever the address
/// (<c>Homework:LoginAttemptsPerAccountPerMinute</c>, default 10). A refusal is 429 problem details
/// with <c>Retry-After</c>.
/// </summary>
internal static class AccountThrottles
{
    public const string LoginPolicy = "login";
    public const string RegisterPolicy = "register";

    public static IServiceCollection AddAccountThrottles(this IServiceCollection services, HomeworkSettings settings)
    {
        services.AddSingleton(new SignInAccountLimiter(settings.LoginAttemptsPerAccountPerMinute));
        return services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(LoginPolicy, http => RateLimitPartition.GetFixedWindowLimiter(
                Address(http),
                _ => new FixedWindowRateLimiterOptions { PermitLimit = Math.Max(1, settings.LoginAttemptsPerMinute), Window = TimeSpan.FromMinutes(1), QueueLimit = 0 }));
            o.AddPolicy(RegisterPolicy, http => RateLimitPartition.GetFixedWindowLimiter(
                Address(http),
                _ => new FixedWindowRateLimiterOptions { PermitLimit = Math.Max(1, settings.RegistrationsPerHour), Window = TimeSpan.FromHours(1), QueueLimit = 0 }));
            o.OnRejected = (context, _) =>
            {
                var wait = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromMinutes(1);
                var registering = context.HttpContext.Request.Path.StartsWithSegments("/api/auth/register", StringComparison.OrdinalIgnoreCase);
                return new ValueTask(Refuse(
                    wait,
                    registering ? "Too many accounts were created from this address; wait and try again later." : "Too many sign-in attempts from this address; wait a minute and try again.")
                    .ExecuteAsync(context.HttpContext));
            };
        });
    }

    /// <summary>429 problem details with <c>Retry-After</c> (whole seconds, at least 1).</summary>
    public static IResult Refuse(TimeSpan retryAfter, string detail) => new RefusalResult(retryAfter, detail);

    private static string Address(HttpContext http) => http.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    private sealed class RefusalResult(TimeSpan retryAfter, string detail) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            return Problems.TooManyRequests(detail).ExecuteAsync(httpContext);
        }
    }
}

/// <summary>
/// Sign-in attempts per account name (case-insensitive, known or not), from every address together:
/// guesses at one account spread over many addresses are refused like guesses from one.
/// </summary>
internal sealed class SignInAccountLimiter(int attemptsPerMinute) : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter = PartitionedRateLimiter.Create<string, string>(name => RateLimitPartition.GetFixedWindowLimiter(
        name,
        _ => new FixedWindowRateLimiterOptions { PermitLimit = Math.Max(1, attemptsPerMinute), Window = TimeSpan.FromMinutes(1), QueueLimit = 0 }));

    /// <summary>Takes one attempt for <paramref name="username"/>; null when allowed, else how long to wait.</summary>
    public TimeSpan? TryAttempt(string username)
    {
        var key = username.Length > 64 ? username[..64] : username;
        using var lease = _limiter.AttemptAcquire(key.ToUpperInvariant());
        if (lease.IsAcquired)
        {
            return null;
        }

        return lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromMinutes(1);
    }

    public void Dispose() => _limiter.Dispose();
}
