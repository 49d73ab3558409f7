using Microsoft.Extensions.Logging;
using TokenMeter.Attribution;
using TokenMeter.Diagnostics;
using TokenMeter.Pricing;

namespace TokenMeter.Metering;

/// <summary>
/// Where every metered call ends up: priced, added to its attribution scope, shown to the
/// observers, counted in the metrics, and queued for storage. Never throws.
/// </summary>
internal sealed class UsageMeter
{
    private readonly IUsagePricer? _pricer;
    private readonly IUsageSink? _sink;
    private readonly IUsageObserver[] _observers;
    private readonly TokenMeterMetrics _metrics;
    private readonly ILogger _logger;

    public UsageMeter(TokenMeterMetrics metrics, IEnumerable<IUsageObserver> observers, ILogger<UsageMeter> logger, TimeProvider timeProvider, IUsagePricer? pricer = null, IUsageSink? sink = null)
    {
        _metrics = metrics;
        _observers = [.. observers];
        _logger = logger;
        TimeProvider = timeProvider;
        _pricer = pricer;
        _sink = sink;
        CanDefer = _observers.Length == 0 && sink is not null;
    }

    public TimeProvider TimeProvider { get; }

    /// <summary>
    /// True when no observer needs each record the moment its call ends: records may then be built,
    /// priced, counted and logged off the caller's thread (see <see cref="MeteredCall.Resolve"/>).
    /// </summary>
    public bool CanDefer { get; }

    /// <summary>
    /// Whether to defer this call's record: when nothing needs it at once and the writer is keeping
    /// up. A writer that falls behind (a starved or saturated process) gets built records again, so
    /// deferring never slows the writer down when it matters.
    /// </summary>
    public bool DefersRecording => CanDefer && !_sink!.IsBacklogged;

    /// <summary>Prices, attributes, observes, counts and queues one finished call.</summary>
    /// <param name="record">The unpriced record.</param>
    /// <param name="scope">The scope the call was made in, captured when it started.</param>
    /// <returns>The priced record.</returns>
    public UsageRecord Record(UsageRecord record, UsageScope? scope)
    {
        record = Price(record);

        try
        {
            scope?.Add(record);
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
        }

        foreach (var observer in _observers)
        {
            try
            {
                observer.OnUsage(record);
            }
            catch (Exception ex)
            {
                Log.ObserverFailed(_logger, ex, observer.GetType().Name);
            }
        }

        Count(record);

        try
        {
            if (_sink is not null)
            {
                _sink.Enqueue(record);
            }
        }
        catch (Exception ex)
        {
            Log.EnqueueFailed(_logger, ex, record.Id);
        }

        return record;
    }

    /// <summary>Queues a finished call whose record is built later, and adds it to its scope (resolved when the totals are read).</summary>
    /// <param name="usage">The finished call.</param>
    /// <param name="scope">The scope the call was made in, captured when it started.</param>
    public void Defer(MeteredCall usage, UsageScope? scope)
    {
        try
        {
            scope?.AddPending(usage);
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
        }

        _sink?.Enqueue(usage);
    }

    /// <summary>Prices, counts and logs a record built off the caller's thread (a deferred call's).</summary>
    /// <param name="record">The unpriced record.</param>
    /// <returns>The priced record.</returns>
    public UsageRecord Finish(UsageRecord record)
    {
        record = Price(record);
        Count(record);
        return record;
    }

    /// <summary>Logs a failure to meter a call (never thrown to anyone).</summary>
    public void Failed(Exception exception) => Log.MeteringFailed(_logger, exception);

    private UsageRecord Price(UsageRecord record)
    {
        try
        {
            if (_pricer is not null)
            {
                record = _pricer.Price(record);
            }
        }
        catch (Exception ex)
        {
            Log.PricingFailed(_logger, ex, record.Model);
        }

        return record;
    }

    private void Count(UsageRecord record)
    {
        try
        {
            _metrics.Record(record);
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
        }

        Log.CallRecorded(_logger, record.Operation, record.Model, record.Status, record.InputTokens, record.OutputTokens);
    }

    /// <summary>Builds a record for a call that started at <paramref name="createdAt"/> in <paramref name="scope"/>.</summary>
    public static UsageRecord NewRecord(DateTimeOffset createdAt, UsageScope? scope, string? fallbackUser) =>
        BuildRecord(createdAt, scope?.Context, fallbackUser, UsageOperation.Other, null, default, 0, default, null, false);

    /// <summary>
    /// The one place a record is built, for metered and manually recorded calls alike: the
    /// attribution of <paramref name="context"/> (else <paramref name="fallbackUser"/>), what the
    /// reply (or the caller) said in <paramref name="usage"/>, and how the call went.
    /// </summary>
    public static UsageRecord BuildRecord(
        DateTimeOffset createdAt,
        UsageContext? context,
        string? fallbackUser,
        string operation,
        string? requestModel,
        in ParsedUsage usage,
        double durationMs,
        UsageStatus status,
        int? httpStatus,
        bool streaming) => new()
        {
            Id = UsageIds.NewVersion7(createdAt),
            CreatedAt = createdAt,
            UserId = context?.UserId ?? fallbackUser,
            Endpoint = context?.Endpoint,
            SessionId = context?.SessionId,
            ProblemId = context?.ProblemId,
            Tags = context?.Tags,
            Operation = operation,
            RequestModel = requestModel,
            Model = usage.Model ?? requestModel,
            ServiceTier = usage.ServiceTier,
            InputTokens = usage.InputTokens,
            CachedInputTokens = usage.CachedInputTokens,
            CacheWriteTokens = usage.CacheWriteTokens,
            OutputTokens = usage.OutputTokens,
            ReasoningTokens = usage.ReasoningTokens,
            AudioInputTokens = usage.AudioInputTokens,
            AudioOutputTokens = usage.AudioOutputTokens,
            TotalTokens = usage.TotalTokens,
            DurationMs = durationMs,
            Status = status,
            HttpStatus = httpStatus,
            Streaming = streaming,
        };
}
