using System.ClientModel;
using System.ClientModel.Primitives;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Attribution;
using TokenMeter.Diagnostics;

namespace TokenMeter.Metering;

/// <summary>
/// A per-call policy for the OpenAI SDK's pipeline that meters every chat, responses,
/// embeddings, images and audio call. It never throws into the caller and never changes the
/// bytes the caller receives.
/// </summary>
internal sealed class OpenAIMeteringPolicy : PipelinePolicy
{
    private const int MaxBodyCopy = 8 * 1024 * 1024;

    // Request bodies up to this size are read when the record is built; larger ones at once (no large copies kept).
    private const int MaxUnreadBody = 16 * 1024;

    private readonly UsageMeter _meter;
    // The options of the moment, kept up to date by the monitor: reading CurrentValue looks them up in its cache on every call.
    private TokenMeterOptions _options;
    private readonly ILogger _logger;
    private readonly IBatchAttribution? _batchAttribution;

    public OpenAIMeteringPolicy(UsageMeter meter, IOptionsMonitor<TokenMeterOptions> options, ILogger<OpenAIMeteringPolicy> logger, IBatchAttribution? batchAttribution = null)
    {
        _meter = meter;
        _options = options.CurrentValue;
        options.OnChange(changed => Volatile.Write(ref _options, changed));
        _logger = logger;
        _batchAttribution = batchAttribution;
    }

    public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        var operation = Start(message);
        PooledBufferStream? copy = null;
        if (operation is not null)
        {
            copy = NewBodyCopy(message);
            if (copy is not null)
            {
                try
                {
                    message.Request.Content!.WriteTo(copy, message.CancellationToken);
                }
                catch (Exception ex)
                {
                    Log.MeteringFailed(_logger, ex);
                    copy.Dispose();
                    copy = null;
                }
            }
        }

        var call = operation is null ? null : Begin(message, operation, copy);
        if (call is null)
        {
            ProcessNext(message, pipeline, currentIndex);
            return;
        }

        try
        {
            ProcessNext(message, pipeline, currentIndex);
        }
        catch (Exception ex)
        {
            Failed(call, message, ex);
            throw;
        }

        Completed(call, message);
    }

    // Pooled: the rest of the pipeline completes asynchronously, which would box this state machine on every call.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        var operation = Start(message);
        PooledBufferStream? copy = null;
        if (operation is not null)
        {
            copy = NewBodyCopy(message);
            if (copy is not null)
            {
                try
                {
                    await message.Request.Content!.WriteToAsync(copy, message.CancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    Log.MeteringFailed(_logger, ex);
                    copy.Dispose();
                    copy = null;
                }
            }
        }

        var call = operation is null ? null : Begin(message, operation, copy);
        if (call is null)
        {
            await ProcessNextAsync(message, pipeline, currentIndex).ConfigureAwait(false);
            return;
        }

        try
        {
            await ProcessNextAsync(message, pipeline, currentIndex).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Failed(call, message, ex);
            throw;
        }

        Completed(call, message);
    }

    internal static string? OperationOf(PipelineRequest request)
    {
        if (request.Uri is null)
        {
            return null;
        }

        var post = string.Equals(request.Method, "POST", StringComparison.OrdinalIgnoreCase);
        if (!post && !string.Equals(request.Method, "GET", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        // The original string, cut at the query: Uri.AbsolutePath would allocate a new string per request.
        var path = request.Uri.IsAbsoluteUri ? request.Uri.OriginalString.AsSpan() : request.Uri.AbsolutePath.AsSpan();
        var end = path.IndexOfAny('?', '#');
        if (end >= 0)
        {
            path = path[..end];
        }

        path = path.TrimEnd('/');
        if (!post)
        {
            // The one GET that is metered: downloading a file's content (a Batch API output file).
            return BatchOutputMeter.IsFileContent(path) ? UsageOperation.Batch : null;
        }

        if (path.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            return UsageOperation.Chat;
        }

        if (path.EndsWith("/responses", StringComparison.Ordinal))
        {
            return UsageOperation.Responses;
        }

        if (path.EndsWith("/embeddings", StringComparison.Ordinal))
        {
            return UsageOperation.Embeddings;
        }

        if (path.EndsWith("/images/generations", StringComparison.Ordinal) || path.EndsWith("/images/edits", StringComparison.Ordinal) || path.EndsWith("/images/variations", StringComparison.Ordinal))
        {
            return UsageOperation.Images;
        }

        if (path.EndsWith("/audio/transcriptions", StringComparison.Ordinal) || path.EndsWith("/audio/translations", StringComparison.Ordinal))
        {
            return UsageOperation.AudioTranscription;
        }

        if (path.EndsWith("/audio/speech", StringComparison.Ordinal))
        {
            return UsageOperation.AudioSpeech;
        }

        if (path.EndsWith("/moderations", StringComparison.Ordinal))
        {
            return UsageOperation.Moderation;
        }

        if (path.EndsWith("/completions", StringComparison.Ordinal))
        {
            return UsageOperation.TextCompletion;
        }

        return null;
    }

    private string? Start(PipelineMessage message)
    {
        try
        {
            if (!Volatile.Read(ref _options).Enabled)
            {
                return null;
            }

            var operation = OperationOf(message.Request);
            if (operation is not null && MeteringProbe.Current is { } probe)
            {
                probe.Metered = true;
            }

            return operation;
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
            return null;
        }
    }

    private PooledBufferStream? NewBodyCopy(PipelineMessage message)
    {
        var content = message.Request.Content;
        if (content is null)
        {
            return null;
        }

        var known = content.TryComputeLength(out var length);
        if (known && length <= MaxUnreadBody && _meter.CanDefer)
        {
            // Likely kept unread until the record is built: copied once, into an array of its own.
            return new PooledBufferStream((int)length, MaxBodyCopy, exact: true);
        }

        return known && length > MaxBodyCopy ? null : new PooledBufferStream(known ? (int)Math.Max(length, 16) : 4096, MaxBodyCopy);
    }

    private MeteredCall? Begin(PipelineMessage message, string operation, PooledBufferStream? copy)
    {
        try
        {
            var options = Volatile.Read(ref _options);
            var info = default(RequestInfo);
            PooledBufferStream? keptBody = null;
            byte[]? unread = null;
            if (copy is not null)
            {
                // A multipart/form-data body starts with its boundary; a JSON body with '{'.
                var multipart = copy.WrittenSpan.StartsWith("--"u8);
                if (copy.Overflowed)
                {
                    copy.Dispose();
                }
                else if (multipart)
                {
                    info = RequestInfo.FromMultipart(copy.WrittenSpan);
                    copy.Dispose();
                }
                else if (_meter.CanDefer && copy.WrittenSpan.Length <= MaxUnreadBody && (operation != UsageOperation.Chat || RequestInfo.IsSentAsIs(copy.WrittenSpan)))
                {
                    // Nothing before the record needs the request's fields: they are read when it is
                    // built, off this thread, from an exact copy (a pooled buffer goes back here).
                    unread = copy.ToOwnedArray();
                    copy.Dispose();
                }
                else
                {
                    info = RequestInfo.Read(copy.WrittenSpan, operation);
                    if (info.Stream && operation == UsageOperation.Chat && !info.HasStreamOptions && options.IncludeStreamUsage && RequestInfo.WithIncludeUsage(copy.WrittenSpan) is { } withUsage)
                    {
                        message.Request.Content = BinaryContent.Create(new BinaryData(withUsage));
                    }

                    // Kept (the pooled copy itself, until the call completes) to estimate input
                    // tokens should the reply never report its usage (a stream cut, a buffered
                    // reply without usage).
                    if (options.EstimateMissingUsage && operation is UsageOperation.Chat or UsageOperation.Responses or UsageOperation.TextCompletion)
                    {
                        keptBody = copy;
                    }

                    if (keptBody is null)
                    {
                        copy.Dispose();
                    }
                }
            }

            return new MeteredCall(_meter, _logger, operation, UsageScope.Current, info, keptBody, unread)
            {
                EstimateMissingUsage = options.EstimateMissingUsage,
            };
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
            copy?.Dispose();
            return null;
        }
    }

    private void Completed(MeteredCall call, PipelineMessage message)
    {
        try
        {
            var response = message.Response;
            if (response is null)
            {
                call.Complete(default, UsageStatus.TransportError, null);
                return;
            }

            if (call.Operation == UsageOperation.Batch)
            {
                // Each request of a batch output file is its own record; the download itself costs nothing.
                call.Discard();
                if (message.BufferResponse && !response.IsError)
                {
                    BatchOutputMeter.Record(_meter, response.Content.ToMemory().Span, call.Scope, _batchAttribution, call.CreatedAt);
                }

                return;
            }

            var usage = default(ParsedUsage);
            if (message.BufferResponse)
            {
                call.Streaming = false;
                call.CompleteBuffered(response.Content, response.IsError, response.Status);
                return;
            }

            call.Streaming = true;
            if (response.IsError || response.ContentStream is null)
            {
                call.Complete(usage, response.IsError ? UsageStatus.HttpError : UsageStatus.UsageMissing, response.Status);
                return;
            }

            response.ContentStream = new MeteredStream(response.ContentStream, call, response.Status);
        }
        catch (Exception ex)
        {
            Log.MeteringFailed(_logger, ex);
            call.Complete(default, UsageStatus.UsageMissing, message.Response?.Status);
        }
    }

    /// <summary>Reads the usage a buffered reply reports; returns how the call ended.</summary>
    /// <param name="call">The call.</param>
    /// <param name="body">The reply body.</param>
    /// <param name="isError">Whether the reply has an error status.</param>
    /// <param name="usage">Filled with what the reply says.</param>
    /// <returns>The call's status, before estimation.</returns>
    internal static UsageStatus ReadBufferedReply(MeteredCall call, ReadOnlySpan<byte> body, bool isError, ref ParsedUsage usage)
    {
        var parsed = false;
        if (call.Operation != UsageOperation.AudioSpeech)
        {
            usage.CountData = call.Operation == UsageOperation.Images;
            parsed = UsageParser.TryParse(body, ref usage);
        }

        if (!parsed)
        {
            // Not a reply at all (malformed), or audio: nothing to estimate from the reply.
            call.EstimateMissingUsage = call.EstimateMissingUsage && call.Operation == UsageOperation.AudioSpeech;
        }
        else if (!isError && !usage.HasUsage)
        {
            // Kinds without token usage are still fully reported: a moderation (free) and
            // images billed per image (the count is in the reply, size and quality in the request).
            usage.HasUsage = call.Operation == UsageOperation.Moderation || (call.Operation == UsageOperation.Images && usage.Images > 0);
            if (!usage.HasUsage && call.EstimateMissingUsage && call.Operation is UsageOperation.Chat or UsageOperation.Responses or UsageOperation.TextCompletion)
            {
                call.DeliveredText = TokenEstimator.ReplyText(body);
            }
        }

        return isError ? UsageStatus.HttpError : usage.HasUsage ? UsageStatus.Ok : UsageStatus.UsageMissing;
    }

    private static void Failed(MeteredCall call, PipelineMessage message, Exception exception)
    {
        if (call.Operation == UsageOperation.Batch)
        {
            call.Discard();
            return;
        }

        // A timeout also surfaces as OperationCanceledException; only the caller's token means "cancelled".
        var status = message.CancellationToken.IsCancellationRequested ? UsageStatus.Cancelled : UsageStatus.TransportError;
        _ = exception;
        call.Complete(default, status, null);
    }
}
