using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using HomeworkApi.Hosting;

namespace HomeworkApi.RateLimits;

/// <summary>
/// The per-user limits of the homework routes (CONTRACT §9): requests per minute per charged user
/// (per client address when anonymous), and tokens per minute per user. Decides before the model is
/// called; counts each refusal on the <c>homework.rate_limit.rejections</c> counter.
/// </summary>
internal sealed class HomeworkRateLimiter : IDisposable
{
    /// <summary>The key of the <see cref="TimeProvider"/> the limits read, so tests can move their time alone.</summary>
    public const string ClockKey = "HomeworkRateLimits";

    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    private readonly PartitionedRateLimiter<string>? _requests;
    private readonly UserTokenWindow? _tokens;
    private readonly int _requestsPerMinute;
    private readonly long _tokensPerMinute;
    private readonly Counter<long> _rejections;

    public HomeworkRateLimiter(HomeworkSettings settings, [FromKeyedServices(ClockKey)] TimeProvider clock, IMeterFactory meterFactory, UserTokenWindow? tokens = null)
    {
        _requestsPerMinute = settings.RequestsPerMinute;
        _tokensPerMinute = settings.TokensPerMinute;
        if (_requestsPerMinute > 0)
        {
            // One limiter per partition, created on first use; PartitionedRateLimiter drops those idle
            // for a while (IdleDuration), so memory follows the users active in the last minute or so.
            _requests = PartitionedRateLimiter.Create<string, string>(key =>
                RateLimitPartition.Get(key, _ => new SlidingLogRateLimiter(_requestsPerMinute, Minute, clock)));
        }

        _tokens = _tokensPerMinute > 0 ? tokens : null;
        var meter = meterFactory.Create(TokenMeter.TokenMeterDiagnostics.MeterName);
        _rejections = meter.CreateCounter<long>(
            "homework.rate_limit.rejections",
            unit: "{request}",
            description: "Homework requests refused by a per-user rate limit, by limit (requests or tokens).");
    }

    public bool Enabled => _requests is not null || _tokens is not null;

    /// <summary>Null when the request may go ahead; otherwise the 429 to answer with.</summary>
    /// <param name="userId">The charged user; null for an anonymous call.</param>
    /// <param name="clientAddress">The client's address, which partitions anonymous calls.</param>
    public RateLimitRefusal? Check(string? userId, IPAddress? clientAddress)
    {
        // Tokens first: it only reads, so a request refused for tokens does not also spend a request permit.
        if (_tokens is not null && userId is not null)
        {
            var (used, retryAfter) = _tokens.Check(userId, _tokensPerMinute);
            if (used >= _tokensPerMinute)
            {
                return Refuse(RateLimitKind.Tokens, retryAfter, used);
            }
        }

        if (_requests is not null)
        {
            var key = userId is not null ? "user:" + userId : "ip:" + AddressKey(clientAddress);
            using var lease = _requests.AttemptAcquire(key);
            if (!lease.IsAcquired)
            {
                var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : Minute;
                return Refuse(RateLimitKind.Requests, retryAfter, null);
            }
        }

        return null;
    }

    public void Dispose() => _requests?.Dispose();

    /// <summary>
    /// The partition of an anonymous caller: its IPv4 address, or the /64 prefix of an IPv6 one
    /// (one subscriber's network, in which a client can pick a new address for every request).
    /// </summary>
    internal static string AddressKey(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var bytes = address.GetAddressBytes();
            Array.Clear(bytes, 8, 8);
            return new IPAddress(bytes) + "/64";
        }

        return address.ToString();
    }

    private RateLimitRefusal Refuse(RateLimitKind kind, TimeSpan retryAfter, long? tokensUsed)
    {
        _rejections.Add(1, new TagList { { "limit", kind == RateLimitKind.Tokens ? "tokens" : "requests" } });
        var limit = kind == RateLimitKind.Tokens ? _tokensPerMinute : _requestsPerMinute;

        // Retry-After is whole seconds: round up, so a client that waits that long is let in.
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
        return new RateLimitRefusal(kind, limit, seconds, tokensUsed);
    }
}

/// <summary>Which per-minute limit refused a request.</summary>
internal enum RateLimitKind
{
    Requests,
    Tokens,
}
