using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Budgets;
using TokenMeter.Diagnostics;
using TokenMeter.Metering;

namespace TokenMeter.RateLimits;

/// <summary>
/// Per-user requests-per-minute and tokens-per-minute limits, kept in an <see cref="IRateLimitStore"/>:
/// in-process for one app instance, or PostgreSQL to hold across every instance. Requests are a
/// <see cref="PartitionedRateLimiter{TResource}"/> (<see cref="Requests"/>) that plugs into ASP.NET
/// Core's rate limiting; tokens reserve a call's estimate before it and settle to what it used
/// after it (<see cref="CheckAsync"/>). Refusals are counted on <c>tokenmeter.rate_limit.rejections</c>.
/// </summary>
public sealed class UserRateLimiter : IDisposable
{
    /// <summary>The key of a keyed <see cref="TimeProvider"/> the limits read instead of the app's, so tests can move their time alone.</summary>
    public const string ClockKey = "TokenMeter.RateLimits";

    /// <summary>The window of both limits.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly IRateLimitStore _store;
    private readonly TimeProvider _clock;
    private readonly RateLimitOptions _options;
    private readonly ILogger _logger;
    private readonly Counter<long>? _rejections;
    private readonly Counter<long>? _checkFailures;
    private readonly SharedLimitSettler? _settler;
    private const int OpenSweepEvery = 4_096;

    private readonly ConcurrentDictionary<string, OpenCalls> _open = new(StringComparer.Ordinal);
    private int _lookupsSinceSweep;

    /// <summary>Creates the limiter.</summary>
    /// <param name="store">Where the windows are kept.</param>
    /// <param name="services">Resolves the keyed clock <see cref="ClockKey"/>, else the app's <see cref="TimeProvider"/>.</param>
    /// <param name="options">The limits.</param>
    /// <param name="logger">The logger.</param>
    /// <param name="meterFactory">Creates the <c>TokenMeter</c> meter, when metrics are set up.</param>
    public UserRateLimiter(IRateLimitStore store, IServiceProvider services, IOptions<RateLimitOptions> options, ILogger<UserRateLimiter> logger, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _store = store;
        _clock = services.GetKeyedService<TimeProvider>(ClockKey) ?? services.GetService<TimeProvider>() ?? TimeProvider.System;

        // A shared store's settles are written after the responses, in batches; in-process ones at once.
        _settler = store.IsSynchronous ? null : services.GetService<SharedLimitSettler>();
        _options = options.Value;
        _logger = logger;
        Requests = new RequestLimiter(this);
        if (meterFactory is not null)
        {
            var meter = meterFactory.Create("TokenMeter");
            _rejections = meter.CreateCounter<long>("tokenmeter.rate_limit.rejections", "{request}", "Calls refused by a per-user rate limit, by limit (requests or tokens).");
            _checkFailures = meter.CreateCounter<long>("tokenmeter.rate_limit.check_failures", "{error}", "Rate-limit checks that could not reach the store.");
        }
    }

    /// <summary>Whether any limit is on.</summary>
    public bool Enabled => _options.RequestsPerMinute > 0 || _options.TokensPerMinute > 0;

    /// <summary>The limits in force.</summary>
    public RateLimitOptions Options => _options;

    /// <summary>
    /// Requests per minute per partition key (the charged user, or <c>ip:</c> and the client address):
    /// one permit a request, an exact sliding window of a minute. A refused lease carries
    /// <see cref="MetadataName.RetryAfter"/>. With a shared store <c>AttemptAcquire</c> answers
    /// "not acquired" without a permit and <c>AcquireAsync</c> asks the store (as ASP.NET Core's
    /// middleware does); with the limit off every lease is acquired.
    /// </summary>
    public PartitionedRateLimiter<string> Requests { get; }

    /// <summary>
    /// Checks both limits of a call and, when allowed, reserves <paramref name="estimatedTokens"/> in
    /// the user's tokens window (tokens first, so a call refused for tokens spends no request permit).
    /// </summary>
    /// <param name="partitionKey">The requests partition: the charged user id, or <c>ip:</c> and the client address when anonymous.</param>
    /// <param name="userId">The charged user (tokens are per user); null for an anonymous call.</param>
    /// <param name="estimatedTokens">The call's worst case in tokens (prompt + max output tokens).</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The decision; dispose it when the call has ended.</returns>
    public async ValueTask<RateLimitDecision> CheckAsync(string partitionKey, string? userId, long estimatedTokens, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(partitionKey);
        try
        {
            OpenCall? tokens = null;
            if (_options.TokensPerMinute > 0 && userId is not null)
            {
                var now = _clock.GetUtcNow();
                var id = UsageIds.NewVersion7(now);
                var key = TokensKey(userId);
                var result = await _store.AcquireAsync(new RateLimitRequest(key, id, now, Window, _options.TokensPerMinute, Math.Max(1, estimatedTokens), MustFit: false), cancellationToken).ConfigureAwait(false);
                if (!result.Allowed)
                {
                    return Refuse(RateLimitKind.Tokens, _options.TokensPerMinute, result.RetryAfter, result.Used);
                }

                tokens = Open(userId, key, id, now);
            }

            if (_options.RequestsPerMinute > 0)
            {
                var result = await AcquireRequestAsync(partitionKey, cancellationToken).ConfigureAwait(false);
                if (!result.Allowed)
                {
                    if (tokens is not null)
                    {
                        await tokens.CloseAsync().ConfigureAwait(false);
                    }

                    return Refuse(RateLimitKind.Requests, _options.RequestsPerMinute, result.RetryAfter, null);
                }
            }

            return tokens is null ? RateLimitDecision.Allowed : new RateLimitDecision(null, 0, TimeSpan.Zero, null, tokens.CloseAsync);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _checkFailures?.Add(1);
            Log.RateLimitCheckFailed(_logger, ex, _options.FailClosed);
            return _options.FailClosed ? new RateLimitDecision(RateLimitKind.Unavailable, 0, TimeSpan.FromSeconds(30), null, null) : RateLimitDecision.Allowed;
        }
    }

    /// <summary>
    /// Checks both limits and the user's budget in one step — one statement with PostgreSQL, the
    /// same three checks one after the other otherwise. Refused by a rate limit: no budget is
    /// reserved (<see cref="RateLimitDecision.Budget"/> is null). Let through by both rate limits:
    /// <see cref="RateLimitDecision.Budget"/> holds the budget's decision; a call refused by the
    /// budget reserves no tokens (its request permit stays taken).
    /// </summary>
    /// <param name="partitionKey">The requests partition: the charged user id, or <c>ip:</c> and the client address when anonymous.</param>
    /// <param name="userId">The charged user (tokens and budget).</param>
    /// <param name="estimate">The call's worst case (see <see cref="UsageEstimator"/>).</param>
    /// <param name="budget">The budget guard.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The decision; dispose it, and its <see cref="RateLimitDecision.Budget"/>, when the call has ended.</returns>
    public ValueTask<RateLimitDecision> CheckWithBudgetAsync(string partitionKey, string userId, BudgetEstimate estimate, BudgetGuard budget, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        ArgumentNullException.ThrowIfNull(estimate);
        return CheckWithBudgetAsync(partitionKey, userId, estimate.Tokens, budget, userId, estimate, cancellationToken);
    }

    /// <summary>Whether the limits and <paramref name="budget"/> are kept in the same shared store (then they are checked in one step).</summary>
    internal bool SharesStoreWith(BudgetGuard budget) =>
        budget.SharedStore is ISharedLimitStore theirs && _store is ISharedLimitStore mine && ReferenceEquals(theirs.SharedTarget, mine.SharedTarget);

    /// <summary><see cref="CheckWithBudgetAsync(string, string, BudgetEstimate, BudgetGuard, CancellationToken)"/> where the budget may charge another user than the rate limits.</summary>
    internal async ValueTask<RateLimitDecision> CheckWithBudgetAsync(string partitionKey, string? userId, long estimatedTokens, BudgetGuard budget, string budgetUserId, BudgetEstimate? budgetEstimate, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(partitionKey);
        ArgumentNullException.ThrowIfNull(budget);
        if (!SharesStoreWith(budget))
        {
            var rate = await CheckAsync(partitionKey, userId, estimatedTokens, cancellationToken).ConfigureAwait(false);
            if (!rate.IsAllowed)
            {
                return rate;
            }

            var reservation = await budget.ReserveAsync(budgetUserId, budgetEstimate, cancellationToken).ConfigureAwait(false);
            if (reservation.IsAllowed)
            {
                return rate.WithBudget(reservation);
            }

            await rate.DisposeAsync().ConfigureAwait(false);
            return new RateLimitDecision(null, 0, TimeSpan.Zero, null, null, reservation);
        }

        var now = _clock.GetUtcNow();

        // The user's entry keeps the window keys made for their last call (no new strings per call).
        var entry = userId is not null && _options.TokensPerMinute > 0 ? EntryOf(userId) : null;
        RateLimitRequest? tokens = _options.TokensPerMinute > 0 && entry is not null
            ? new RateLimitRequest(entry.TokensKey, UsageIds.NewVersion7(now), now, Window, _options.TokensPerMinute, Math.Max(1, estimatedTokens), MustFit: false)
            : null;
        RateLimitRequest? requests = _options.RequestsPerMinute > 0
            ? new RateLimitRequest(entry?.RequestsKey(partitionKey) ?? RequestsKey(partitionKey), UsageIds.NewVersion7(now), now, Window, _options.RequestsPerMinute, 1, MustFit: true)
            : null;
        var hold = budget.CreateHoldRequest(budgetUserId, budgetEstimate);
        LimitCheckResult result;
        try
        {
            result = await ((ISharedLimitStore)_store).CheckAsync(new LimitCheck(tokens, requests, hold), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (Enabled)
            {
                _checkFailures?.Add(1);
                Log.RateLimitCheckFailed(_logger, ex, _options.FailClosed);
                if (_options.FailClosed)
                {
                    return new RateLimitDecision(RateLimitKind.Unavailable, 0, TimeSpan.FromSeconds(30), null, null);
                }
            }

            return new RateLimitDecision(null, 0, TimeSpan.Zero, null, null, budget.CheckFailed(ex));
        }

        if (result.RefusedBy is { } kind)
        {
            return kind == RateLimitKind.Tokens
                ? Refuse(kind, _options.TokensPerMinute, result.Rate!.RetryAfter, result.Rate.Used)
                : Refuse(kind, _options.RequestsPerMinute, result.Rate!.RetryAfter, null);
        }

        var decision = budget.Complete(hold, result.Budget!);
        if (tokens is null || !decision.IsAllowed)
        {
            return new RateLimitDecision(null, 0, TimeSpan.Zero, null, null, decision);
        }

        var call = Open(userId!, tokens.Key, tokens.Id, now, entry);
        return new RateLimitDecision(null, 0, TimeSpan.Zero, null, call.CloseAsync, decision);
    }

    /// <summary>Notes a finished call's tokens against the user's open reservation (fed by the metering path).</summary>
    /// <param name="record">The record.</param>
    public void Observe(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.UserId is { } user && _open.TryGetValue(user, out var calls))
        {
            calls.Attach(record.TotalTokens);
        }
    }

    /// <summary>The tokens partition of a user.</summary>
    /// <param name="userId">The user.</param>
    /// <returns>The key.</returns>
    public static string TokensKey(string userId) => "tokens/" + userId;

    private static string RequestsKey(string partitionKey) => "requests/" + partitionKey;

    /// <inheritdoc />
    public void Dispose() => Requests.Dispose();

    internal ValueTask<RateLimitResult> AcquireRequestAsync(string partitionKey, CancellationToken cancellationToken) =>
        _store.AcquireAsync(new RateLimitRequest(RequestsKey(partitionKey), UsageIds.NewVersion7(_clock.GetUtcNow()), _clock.GetUtcNow(), Window, _options.RequestsPerMinute, 1, MustFit: true), cancellationToken);

    internal bool IsSynchronous => _store.IsSynchronous;

    internal int RequestsPerMinute => _options.RequestsPerMinute;

    internal void CountRejection(RateLimitKind kind) =>
        _rejections?.Add(1, new TagList { { "limit", kind == RateLimitKind.Tokens ? "tokens" : "requests" } });

    private OpenCall Open(string userId, string key, Guid id, DateTimeOffset at, OpenCalls? entry = null)
    {
        var call = new OpenCall(this, userId, key, id, at);
        while (!(entry ?? EntryOf(userId)).TryAdd(call))
        {
            // Forgotten by a sweep since the lookup: look it up again.
            entry = null;
        }

        return call;
    }

    /// <summary>
    /// The user's entry. It stays while they keep calling (one call at a time adds and removes it no
    /// more); entries idle since the last sweep are forgotten once lookups have run half as many times
    /// as there are entries (a sweep's scan costs at most two entries per lookup since the last).
    /// </summary>
    private OpenCalls EntryOf(string userId)
    {
        var entry = _open.GetOrAdd(userId, static user => new OpenCalls(user));
        if (Interlocked.Increment(ref _lookupsSinceSweep) >= Math.Max(OpenSweepEvery, _open.Count / 2))
        {
            Interlocked.Exchange(ref _lookupsSinceSweep, 0);
            foreach (var (user, calls) in _open)
            {
                if (calls.TryForget())
                {
                    _open.TryRemove(new KeyValuePair<string, OpenCalls>(user, calls));
                }
            }
        }

        return entry;
    }

    /// <summary>Users with no call open now and none since the last sweep (tests).</summary>
    internal int OpenUsers => _open.Count;

    private RateLimitDecision Refuse(RateLimitKind kind, long limit, TimeSpan retryAfter, long? used)
    {
        CountRejection(kind);

        // Whole seconds, rounded up, at least one: a client that waits that long is let in.
        var seconds = Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds));
        return new RateLimitDecision(kind, limit, TimeSpan.FromSeconds(seconds), used, null);
    }

    /// <summary>
    /// Ends a call's tokens reservation: what it used replaces the estimate, at once in-process, after
    /// the response with a shared store (until then the window counts the estimate, which can only
    /// refuse sooner).
    /// </summary>
    private async ValueTask CloseAsync(OpenCall call)
    {
        var tokens = _open.TryGetValue(call.UserId, out var calls) ? calls.Remove(call) : 0;
        if (_settler is not null)
        {
            _settler.Enqueue(new EntrySettle(call.Key, call.Id, tokens, call.At + Window));
            return;
        }

        try
        {
            await _store.SettleAsync(call.Key, call.Id, tokens).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _checkFailures?.Add(1);
            Log.RateLimitCheckFailed(_logger, ex, failClosed: false);
        }
    }

    /// <summary>A call's tokens reservation; <see cref="CloseAsync()"/> ends it.</summary>
    private sealed class OpenCall(UserRateLimiter owner, string userId, string key, Guid id, DateTimeOffset at)
    {
        public string UserId => userId;

        public string Key => key;

        public Guid Id => id;

        public DateTimeOffset At => at;

        public ValueTask CloseAsync() => owner.CloseAsync(this);
    }

    /// <summary>
    /// A user's calls in flight and the tokens their records used so far. The next call to end
    /// settles every token noted so far, its own included (a call's records come before its end), so
    /// no call's tokens are dropped with another call's estimate while that call is still in flight.
    /// </summary>
    private sealed class OpenCalls(string userId)
    {
        private readonly List<OpenCall> _calls = [];
        private KeyPair? _requests;
        private long _tokens;
        private bool _usedSinceSweep = true;
        private bool _forgotten;

        /// <summary>The user's tokens window.</summary>
        public string TokensKey { get; } = UserRateLimiter.TokensKey(userId);

        /// <summary>The requests window of <paramref name="partitionKey"/>, kept for the user's next call.</summary>
        public string RequestsKey(string partitionKey)
        {
            var pair = Volatile.Read(ref _requests);
            if (pair is null || !string.Equals(pair.Partition, partitionKey, StringComparison.Ordinal))
            {
                pair = new KeyPair(partitionKey, UserRateLimiter.RequestsKey(partitionKey));
                Volatile.Write(ref _requests, pair);
            }

            return pair.Key;
        }

        /// <summary>Adds a call; false when this entry was forgotten (the caller looks the user up again).</summary>
        public bool TryAdd(OpenCall call)
        {
            lock (_calls)
            {
                if (_forgotten)
                {
                    return false;
                }

                _calls.Add(call);
                _usedSinceSweep = true;
                return true;
            }
        }

        public void Attach(long tokens)
        {
            lock (_calls)
            {
                if (_calls.Count > 0)
                {
                    _tokens += tokens;
                }
            }
        }

        public long Remove(OpenCall call)
        {
            lock (_calls)
            {
                _calls.Remove(call);
                var tokens = _tokens;
                _tokens = 0;
                return tokens;
            }
        }

        /// <summary>Marks the entry forgotten when no call is open and none was added since the last sweep.</summary>
        public bool TryForget()
        {
            lock (_calls)
            {
                if (_calls.Count > 0 || _usedSinceSweep)
                {
                    _usedSinceSweep = false;
                    return false;
                }

                _forgotten = true;
                return true;
            }
        }
    }

    /// <summary>A requests partition and its window's key.</summary>
    private sealed record KeyPair(string Partition, string Key);

    /// <summary>The requests limit as a partitioned limiter over the store.</summary>
    private sealed class RequestLimiter(UserRateLimiter owner) : PartitionedRateLimiter<string>
    {
        public override RateLimiterStatistics? GetStatistics(string resource) => null;

        protected override RateLimitLease AttemptAcquireCore(string resource, int permitCount)
        {
            if (owner.RequestsPerMinute <= 0 || permitCount == 0)
            {
                return Lease.Acquired;
            }

            if (!owner.IsSynchronous)
            {
                return Lease.NotChecked;
            }

            var check = owner.AcquireRequestAsync(resource, CancellationToken.None);
            return ToLease(check.IsCompleted ? check.Result : check.AsTask().GetAwaiter().GetResult());
        }

        protected override async ValueTask<RateLimitLease> AcquireAsyncCore(string resource, int permitCount, CancellationToken cancellationToken)
        {
            if (owner.RequestsPerMinute <= 0 || permitCount == 0)
            {
                return Lease.Acquired;
            }

            return ToLease(await owner.AcquireRequestAsync(resource, cancellationToken).ConfigureAwait(false));
        }

        private Lease ToLease(RateLimitResult result)
        {
            if (result.Allowed)
            {
                return Lease.Acquired;
            }

            owner.CountRejection(RateLimitKind.Requests);
            return new Lease(false, TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(result.RetryAfter.TotalSeconds))));
        }
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public static readonly Lease Acquired = new(true, null);

        public static readonly Lease NotChecked = new(false, null);

        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } wait && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = wait;
                return true;
            }

            metadata = null;
            return false;
        }
    }
}
