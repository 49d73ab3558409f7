using Microsoft.Extensions.Logging;
using TokenMeter.Attribution;
using TokenMeter.Diagnostics;

namespace TokenMeter.Metering;

/// <summary>One call in flight: who it is for, what it asked, when it started. Completes exactly once.</summary>
internal sealed class MeteredCall
{
    private readonly UsageMeter _meter;
    private readonly ILogger _logger;
    private readonly long _startTimestamp;
    private PooledBufferStream? _requestBody;
    private int _completed;

    public MeteredCall(UsageMeter meter, ILogger logger, string operation, UsageScope? scope, in RequestInfo request, PooledBufferStream? requestBodyForEstimate)
    {
        _meter = meter;
        _logger = logger;
        Operation = operation;
        Scope = scope;
        RequestModel = request.Model;
        RequestUser = request.User;
        Streaming = request.Stream;
        _requestBody = requestBodyForEstimate;
        CreatedAt = meter.TimeProvider.GetUtcNow();
        _startTimestamp = meter.TimeProvider.GetTimestamp();
    }

    public string Operation { get; }

    public UsageScope? Scope { get; }

    public string? RequestModel { get; }

    public string? RequestUser { get; }

    public bool Streaming { get; set; }

    public DateTimeOffset CreatedAt { get; }

    public bool EstimateMissingUsage { get; init; } = true;

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

            _meter.Defer(new DeferredUsage(this, usage, status, httpStatus, durationMs), Scope);
            return;
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
        if (_meter.DefersRecording && reply.Length <= DeferredUsage.MaxDeferredReply)
        {
            if (Interlocked.Exchange(ref _completed, 1) != 0)
            {
                return;
            }

            var durationMs = _meter.TimeProvider.GetElapsedTime(_startTimestamp).TotalMilliseconds;
            if (HasUsageObject(reply.ToMemory().Span))
            {
                ReleaseRequestBody();
            }

            _meter.Defer(new DeferredUsage(this, reply, isError, httpStatus, durationMs), Scope);
            return;
        }

        var usage = default(ParsedUsage);
        var status = OpenAIMeteringPolicy.ReadBufferedReply(this, reply.ToMemory().Span, isError, ref usage);
        Complete(usage, status, httpStatus);
    }

    /// <summary>Builds the record of the finished call (unpriced); null when that failed (logged). Never throws.</summary>
    internal UsageRecord? Build(in ParsedUsage usage, UsageStatus status, int? httpStatus, double durationMs)
    {
        try
        {
            var record = UsageMeter.BuildRecord(
                CreatedAt,
                Scope?.Context,
                RequestUser,
                Operation,
                RequestModel,
                usage,
                durationMs,
                status,
                httpStatus,
                Streaming);

            if (usage.DurationSeconds is { } seconds)
            {
                record = record with { Tags = WithTag(record.Tags, "audio_seconds", seconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)) };
            }

            if (!usage.HasUsage && _requestBody is { } body && EstimateMissingUsage && status is UsageStatus.UsageMissing or UsageStatus.Cancelled or UsageStatus.TransportError)
            {
                var estimated = TokenEstimator.EstimateInputTokens(body.WrittenSpan);
                if (estimated > 0)
                {
                    record = record with
                    {
                        InputTokens = estimated,
                        TotalTokens = estimated,
                        Status = status == UsageStatus.UsageMissing ? UsageStatus.Estimated : status,
                        Tags = WithTag(record.Tags, "tokenmeter.estimated", "input"),
                    };
                }

                Log.UsageMissing(_logger, Operation, record.Model, record.Status, estimated);
            }

            ReleaseRequestBody();
            return record;
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
            return null;
        }
        finally
        {
            ReleaseRequestBody();
        }
    }

    // A reply that carries a usage object needs no estimate, so the request body can go back to the pool now.
    private static bool HasUsageObject(ReadOnlySpan<byte> reply) =>
        reply.IndexOf("\"usage\":{"u8) >= 0 || reply.IndexOf("\"usage\": {"u8) >= 0;

    // The body is a pooled buffer: back to the pool once, as soon as it is no longer needed.
    private void ReleaseRequestBody() => Interlocked.Exchange(ref _requestBody, null)?.Dispose();

    private static Dictionary<string, string> WithTag(IReadOnlyDictionary<string, string>? tags, string key, string value)
    {
        var merged = tags is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(tags, StringComparer.Ordinal);
        merged[key] = value;
        return merged;
    }
}
