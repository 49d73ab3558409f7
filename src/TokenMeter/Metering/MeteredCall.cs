using System.Globalization;
using Microsoft.Extensions.Logging;
using TokenMeter.Attribution;
using TokenMeter.Diagnostics;
using TokenMeter.Pricing;

namespace TokenMeter.Metering;

/// <summary>
/// One call in flight: who it is for, what it asked, when it started. Completes exactly once.
/// When no <see cref="IUsageObserver"/> needs the record the moment the call ends, the finished call
/// itself is queued (and added to its scope) and its record is built, priced, counted and logged off
/// the caller's thread: by the writer when it takes the call from its queue, or by whoever reads the
/// totals of the call's scope first (<see cref="Resolve"/>; every reader gets the same record).
/// </summary>
internal sealed class MeteredCall : IPendingUsage
{
    /// <summary>Buffered replies up to this size are kept and read when the record is resolved; larger ones are read at once.</summary>
    public const int MaxDeferredReply = 16 * 1024;

    private readonly UsageMeter _meter;
    private readonly ILogger _logger;
    private readonly long _startTimestamp;
    private long _createdAtTicks;
    private RequestInfo _request;
    private PooledBufferStream? _requestBody;

    // A JSON request body whose fields nothing needed before the record is built: read then (off the
    // caller's thread when the record is deferred), and kept until then for the estimate too.
    private byte[]? _unreadRequest;
    private bool _streamingSet;
    private int _completed;

    // How the call ended, kept for a record built later (Resolve): the usage (or the reply, or the
    // stream's bytes, to read it from), the status, the HTTP status and the duration.
    private ParsedUsage _usage;
    private UsageStatus _status;
    private int? _httpStatus;
    private double _durationMs;
    private BinaryData? _reply;
    private bool _replyIsError;
    private KeptStream _stream;
    private bool _hasStream;

    // 0 not built, 1 being built, 2 built: one resolver builds, a concurrent one waits for it (no lock object per call).
    private int _state;
    private int _builder;
    private UsageRecord? _record;

    /// <param name="meter">The meter the call reports to.</param>
    /// <param name="logger">The logger.</param>
    /// <param name="operation">The kind of call.</param>
    /// <param name="scope">The scope the call was made in.</param>
    /// <param name="request">The request's fields, when read already.</param>
    /// <param name="requestBodyForEstimate">The pooled request body kept to estimate input tokens, if any.</param>
    /// <param name="unreadRequest">A JSON request body (owned by the call) whose fields are read when the record is built, instead of <paramref name="request"/>.</param>
    public MeteredCall(UsageMeter meter, ILogger logger, string operation, UsageScope? scope, in RequestInfo request, PooledBufferStream? requestBodyForEstimate, byte[]? unreadRequest = null)
    {
        _meter = meter;
        _logger = logger;
        Operation = operation;
        Scope = scope;
        _request = request;
        _unreadRequest = unreadRequest;
        _requestBody = requestBodyForEstimate;
        _startTimestamp = meter.TimeProvider.GetTimestamp();
    }

    public string Operation { get; }

    public UsageScope? Scope { get; }

    /// <summary>Whether the reply is streamed: set when the reply arrives; until then what the request asked.</summary>
    public bool Streaming
    {
        get => _streamingSet ? field : _request.Stream;
        set
        {
            field = value;
            _streamingSet = true;
        }
    }

    /// <summary>
    /// When the call started: the wall clock when first asked (as the record is built, usually off
    /// the caller's thread) less the time since the start, so the caller's thread reads only the
    /// monotonic timestamps it needs for the duration anyway. The same value on every read.
    /// </summary>
    public DateTimeOffset CreatedAt
    {
        get
        {
            var ticks = Volatile.Read(ref _createdAtTicks);
            if (ticks == 0)
            {
                var time = _meter.TimeProvider;
                ticks = (time.GetUtcNow() - time.GetElapsedTime(_startTimestamp)).UtcTicks;
                var first = Interlocked.CompareExchange(ref _createdAtTicks, ticks, 0);
                ticks = first == 0 ? ticks : first;
            }

            return new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    public bool EstimateMissingUsage { get; set; } = true;

    /// <summary>The text the caller received from a reply without usage (a cut stream, a buffered reply), counted as estimated output.</summary>
    public string? DeliveredText { get; set; }

    /// <summary>The meter this call reports to.</summary>
    public UsageMeter Meter => _meter;

    /// <summary>Records the call once; later calls do nothing. Never throws.</summary>
    /// <param name="usage">What the reply said.</param>
    /// <param name="status">How the call ended, before estimation.</param>
    /// <param name="httpStatus">The HTTP status, when a reply arrived.</param>
    public void Complete(in ParsedUsage usage, UsageStatus status, int? httpStatus)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return;
        }

        var durationMs = _meter.TimeProvider.GetElapsedTime(_startTimestamp).TotalMilliseconds;
        if (_meter.DefersRecording)
        {
            // The request body is only needed to estimate a call without usage.
            if (usage.HasUsage)
            {
                ReleaseRequestBody();
            }

            _usage = usage;
            _status = status;
            Defer(httpStatus, durationMs);
            return;
        }

        if (Build(usage, status, httpStatus, durationMs) is { } record)
        {
            _meter.Record(record, Scope);
        }
    }

    /// <summary>
    /// Records a streamed call once, from what its stream kept: read when the record is resolved,
    /// off this thread, when nothing needs the record at once; else read now. Takes the kept buffer.
    /// </summary>
    /// <param name="kept">The stream's bytes and how it ended.</param>
    /// <param name="httpStatus">The HTTP status.</param>
    public void CompleteStream(KeptStream kept, int httpStatus)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            kept.Release();
            return;
        }

        var durationMs = _meter.TimeProvider.GetElapsedTime(_startTimestamp).TotalMilliseconds;
        if (_meter.DefersRecording)
        {
            _stream = kept;
            _hasStream = true;
            Defer(httpStatus, durationMs);
            return;
        }

        var usage = default(ParsedUsage);
        UsageStatus status;
        try
        {
            status = kept.Read(this, ref usage);
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
            status = UsageStatus.UsageMissing;
        }
        finally
        {
            kept.Release();
        }

        if (Build(usage, status, httpStatus, durationMs) is { } record)
        {
            _meter.Record(record, Scope);
        }
    }

    /// <summary>
    /// Records a call with a buffered reply once: read now, or — when nothing needs the record at
    /// once and the reply is small — kept and read when the record is resolved, off this thread.
    /// </summary>
    /// <param name="reply">The reply body.</param>
    /// <param name="isError">Whether the reply is an error status.</param>
    /// <param name="httpStatus">The HTTP status.</param>
    public void CompleteBuffered(BinaryData reply, bool isError, int httpStatus)
    {
        if (_meter.DefersRecording && reply.Length <= MaxDeferredReply)
        {
            if (Interlocked.Exchange(ref _completed, 1) != 0)
            {
                return;
            }

            var durationMs = _meter.TimeProvider.GetElapsedTime(_startTimestamp).TotalMilliseconds;
            if (Volatile.Read(ref _requestBody) is not null && HasUsageObject(reply.ToMemory().Span))
            {
                ReleaseRequestBody();
            }

            _reply = reply;
            _replyIsError = isError;
            Defer(httpStatus, durationMs);
            return;
        }

        var usage = default(ParsedUsage);
        var status = OpenAIMeteringPolicy.ReadBufferedReply(this, reply.ToMemory().Span, isError, ref usage);
        Complete(usage, status, httpStatus);
    }

    /// <summary>Whether the record of a deferred call has been built (cheap; no building).</summary>
    public bool IsResolved => Volatile.Read(ref _state) == 2;

    /// <summary>The record of a deferred call, built on first use; null when building it failed (logged).</summary>
    public UsageRecord? Resolve()
    {
        if (Volatile.Read(ref _state) == 2)
        {
            return _record;
        }

        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            if (Volatile.Read(ref _builder) == Environment.CurrentManagedThreadId)
            {
                // Asked again while building it (from a pricer or a metrics listener): not built yet.
                return null;
            }

            // Another thread is building it (the writer and a scope reader at once): a few microseconds.
            var wait = default(SpinWait);
            while (Volatile.Read(ref _state) != 2)
            {
                wait.SpinOnce();
            }

            return _record;
        }

        Volatile.Write(ref _builder, Environment.CurrentManagedThreadId);
        try
        {
            if (_hasStream)
            {
                _hasStream = false;
                try
                {
                    _status = _stream.Read(this, ref _usage);
                }
                catch (Exception ex)
                {
                    // Still recorded, as a stream whose usage could not be read.
                    _meter.Failed(ex);
                    _usage = default;
                    _status = UsageStatus.UsageMissing;
                }
                finally
                {
                    _stream.Release();
                    _stream = default;
                }
            }
            else if (_reply is { } reply)
            {
                _status = OpenAIMeteringPolicy.ReadBufferedReply(this, reply.ToMemory().Span, _replyIsError, ref _usage);
                _reply = null;
            }

            _record = Build(_usage, _status, _httpStatus, _durationMs) is { } built ? _meter.Finish(built) : null;
        }
        catch (Exception ex)
        {
            // Resolving runs on the writer or a scope reader: a metering bug must reach neither.
            _meter.Failed(ex);
            _record = null;
        }

        Volatile.Write(ref _state, 2);
        return _record;
    }

    /// <summary>Builds the record of the finished call (unpriced); null when that failed (logged). Never throws.</summary>
    internal UsageRecord? Build(in ParsedUsage usage, UsageStatus status, int? httpStatus, double durationMs)
    {
        try
        {
            if (_unreadRequest is { } unread)
            {
                _request = RequestInfo.Read(unread, Operation);
            }

            var record = UsageMeter.BuildRecord(
                CreatedAt,
                Scope?.Context,
                _request.User,
                Operation,
                _request.Model,
                usage,
                durationMs,
                status,
                httpStatus,
                Streaming);

            record = WithBillingUnits(record, usage);

            // Estimated: a reply without usage, or a stream that broke off (what it delivered was
            // used). A buffered call that got no reply at all records no tokens, as before.
            if (!usage.HasUsage && EstimateMissingUsage && (status == UsageStatus.UsageMissing || (Streaming && status is UsageStatus.Cancelled or UsageStatus.TransportError)))
            {
                record = Estimate(record, status);
            }

            return record;
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
            return null;
        }
        finally
        {
            ReleaseRequestBodies();
        }
    }

    /// <summary>Completes the call without recording it (a download whose lines are recorded one by one).</summary>
    public void Discard()
    {
        Interlocked.Exchange(ref _completed, 1);
        ReleaseRequestBodies();
    }

    // Queues this finished call, its record built when resolved (the rest of how it ended is set already).
    private void Defer(int? httpStatus, double durationMs)
    {
        _httpStatus = httpStatus;
        _durationMs = durationMs;
        _meter.Defer(this, Scope);
    }

    // What the call kinds billed by something other than tokens are priced by, kept in the tags so a record can be priced again.
    private UsageRecord WithBillingUnits(UsageRecord record, in ParsedUsage usage)
    {
        Dictionary<string, string>? tags = null;
        if (usage.DurationSeconds is { } seconds)
        {
            Tag(ref tags, record, BillingTags.AudioSeconds, seconds.ToString("0.###", CultureInfo.InvariantCulture));
        }

        if (Operation == UsageOperation.Images)
        {
            if (usage.Images > 0)
            {
                Tag(ref tags, record, BillingTags.Images, usage.Images.ToString(CultureInfo.InvariantCulture));
            }

            if (_request.ImageSize is { Length: > 0 and < 64 } size)
            {
                Tag(ref tags, record, BillingTags.ImageSize, size);
            }

            if (_request.ImageQuality is { Length: > 0 and < 64 } quality)
            {
                Tag(ref tags, record, BillingTags.ImageQuality, quality);
            }

            if (usage.ImageInputTokens > 0)
            {
                Tag(ref tags, record, BillingTags.ImageInputTokens, usage.ImageInputTokens.ToString(CultureInfo.InvariantCulture));
            }
        }

        if (Operation == UsageOperation.AudioSpeech && _request.SpeechInput is { } input && !usage.HasUsage && record.Status == UsageStatus.UsageMissing)
        {
            // Speech succeeded and returned only audio: characters for the models billed by them,
            // and the input tokens (estimated) for the models billed by tokens.
            Tag(ref tags, record, BillingTags.InputCharacters, input.EnumerateRunes().Count().ToString(CultureInfo.InvariantCulture));
            var tokens = TokenEstimator.CountTokens(input, record.Model) + TokenEstimator.CountTokens(_request.SpeechInstructions, record.Model);
            Tag(ref tags, record, BillingTags.Estimated, "input");
            record = record with { InputTokens = tokens, TotalTokens = tokens, Status = UsageStatus.Ok };
        }

        return tags is null ? record : record with { Tags = tags };
    }

    private UsageRecord Estimate(UsageRecord record, UsageStatus status)
    {
        var body = _unreadRequest is { } unread ? unread : _requestBody is { } pooled ? pooled.WrittenSpan : default;
        var input = body.IsEmpty ? 0 : TokenEstimator.EstimateInputTokens(body, record.Model);
        var output = TokenEstimator.CountTokens(DeliveredText, record.Model);
        if (input > 0 || output > 0)
        {
            var what = input > 0 && output > 0 ? "input,output" : input > 0 ? "input" : "output";
            Dictionary<string, string>? tags = null;
            Tag(ref tags, record, BillingTags.Estimated, what);
            record = record with
            {
                InputTokens = input,
                OutputTokens = output,
                TotalTokens = input + output,
                Status = status == UsageStatus.UsageMissing ? UsageStatus.Estimated : status,
                Tags = tags,
            };
        }

        Log.UsageMissing(_logger, Operation, record.Model, record.Status, input, output);
        return record;
    }

    // A reply that carries a usage object needs no estimate, so the request body can go back to the pool now.
    // Searched from the end: the usage object comes after the choices / output.
    // One search: compact and pretty-printed replies alike ("usage": { in the API's own replies).
    private static bool HasUsageObject(ReadOnlySpan<byte> reply)
    {
        var at = reply.LastIndexOf("\"usage\":"u8);
        return at >= 0 && reply[(at + 8)..].TrimStart(" \t\r\n"u8) is [(byte)'{', ..];
    }

    // The body is a pooled buffer: back to the pool once, as soon as it is no longer needed.
    private void ReleaseRequestBody() => Interlocked.Exchange(ref _requestBody, null)?.Dispose();

    // The unread body is needed until the record is built (its fields, the estimate).
    private void ReleaseRequestBodies()
    {
        ReleaseRequestBody();
        _unreadRequest = null;
    }

    private static void Tag(ref Dictionary<string, string>? tags, UsageRecord record, string key, string value)
    {
        tags ??= record.Tags is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(record.Tags, StringComparer.Ordinal);
        tags[key] = value;
    }
}
