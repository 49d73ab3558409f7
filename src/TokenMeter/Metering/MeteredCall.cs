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

        try
        {
            var record = UsageMeter.BuildRecord(
                CreatedAt,
                Scope?.Context,
                RequestUser,
                Operation,
                RequestModel,
                usage,
                _meter.TimeProvider.GetElapsedTime(_startTimestamp).TotalMilliseconds,
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
            _meter.Record(record, Scope);
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
        }
        finally
        {
            ReleaseRequestBody();
        }
    }

    // The body is a pooled buffer: back to the pool once, as soon as it is no longer needed.
    private void ReleaseRequestBody() => Interlocked.Exchange(ref _requestBody, null)?.Dispose();

    private static Dictionary<string, string> WithTag(IReadOnlyDictionary<string, string>? tags, string key, string value)
    {
        var merged = tags is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(tags, StringComparer.Ordinal);
        merged[key] = value;
        return merged;
    }
}
