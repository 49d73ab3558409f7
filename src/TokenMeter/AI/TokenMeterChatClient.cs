using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using TokenMeter.Attribution;
using TokenMeter.Metering;
using TokenMeter.Pricing;

namespace TokenMeter.AI;

/// <summary>
/// Meters an <see cref="IChatClient"/> from the usage it reports. When the inner client is backed
/// by a metered OpenAI SDK pipeline, the pipeline policy already recorded the call and this
/// middleware records nothing, so no call is counted twice.
/// </summary>
internal sealed class TokenMeterChatClient : DelegatingChatClient
{
    private const int TokensPerMessage = 3;
    private const int ReplyPriming = 3;

    private readonly UsageMeter _meter;
    private readonly bool _estimate;
    private readonly string? _defaultModel;

    public TokenMeterChatClient(IChatClient innerClient, UsageMeter meter, bool estimateMissingUsage)
        : base(innerClient)
    {
        _meter = meter;
        _estimate = estimateMissingUsage;
        _defaultModel = innerClient.GetService<ChatClientMetadata>()?.DefaultModelId;
    }

    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? [.. messages];
        var probe = new MeteringProbe();
        MeteringProbe.Current = probe;
        var scope = UsageScope.Current;
        var createdAt = _meter.TimeProvider.GetUtcNow();
        var start = _meter.TimeProvider.GetTimestamp();
        ChatResponse response;
        try
        {
            response = await base.GetResponseAsync(list, options, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (!probe.Metered)
        {
            Record(scope, createdAt, start, list, options, null, null, null, cancellationToken.IsCancellationRequested ? UsageStatus.Cancelled : UsageStatus.TransportError, streaming: false);
            throw;
        }

        if (!probe.Metered)
        {
            Record(scope, createdAt, start, list, options, response.ModelId, response.Usage, response.Text, null, streaming: false);
        }

        return response;
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? [.. messages];
        var probe = new MeteringProbe();
        MeteringProbe.Current = probe;
        var scope = UsageScope.Current;
        var createdAt = _meter.TimeProvider.GetUtcNow();
        var start = _meter.TimeProvider.GetTimestamp();
        UsageDetails? usage = null;
        string? model = null;
        var text = new System.Text.StringBuilder();
        UsageStatus? status = UsageStatus.Cancelled;
        var enumerator = base.GetStreamingResponseAsync(list, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                ChatResponseUpdate update;
                try
                {
                    if (!await enumerator.MoveNextAsync().ConfigureAwait(false))
                    {
                        status = null;
                        break;
                    }

                    update = enumerator.Current;
                }
                catch (Exception)
                {
                    status = cancellationToken.IsCancellationRequested ? UsageStatus.Cancelled : UsageStatus.TransportError;
                    throw;
                }

                model ??= update.ModelId;
                foreach (var content in update.Contents)
                {
                    if (content is UsageContent usageContent)
                    {
                        usage ??= new UsageDetails();
                        usage.Add(usageContent.Details);
                    }
                    else if (content is TextContent textContent)
                    {
                        text.Append(textContent.Text);
                    }
                }

                yield return update;
            }
        }
        finally
        {
            await enumerator.DisposeAsync().ConfigureAwait(false);
            if (!probe.Metered)
            {
                Record(scope, createdAt, start, list, options, model, usage, text.ToString(), usage is not null ? UsageStatus.Ok : status, streaming: true);
            }
        }
    }

    private void Record(UsageScope? scope, DateTimeOffset createdAt, long start, IList<ChatMessage> messages, ChatOptions? options, string? responseModel, UsageDetails? usage, string? responseText, UsageStatus? status, bool streaming)
    {
        var requestModel = options?.ModelId ?? _defaultModel;
        var record = UsageMeter.NewRecord(createdAt, scope, null) with
        {
            Operation = UsageOperation.Chat,
            RequestModel = requestModel,
            Model = responseModel ?? requestModel,
            DurationMs = _meter.TimeProvider.GetElapsedTime(start).TotalMilliseconds,
            Streaming = streaming,
        };

        if (usage is not null)
        {
            var input = usage.InputTokenCount ?? 0;
            var output = usage.OutputTokenCount ?? 0;
            record = record with
            {
                InputTokens = input,
                OutputTokens = output,
                CachedInputTokens = usage.CachedInputTokenCount ?? 0,
                ReasoningTokens = usage.ReasoningTokenCount ?? 0,
                TotalTokens = usage.TotalTokenCount ?? input + output,
                Status = status ?? UsageStatus.Ok,
            };
        }
        else if (_estimate && status is null or UsageStatus.Cancelled or UsageStatus.TransportError)
        {
            // The prompt and the text the caller already received (all of a reply without usage,
            // what a cut or abandoned stream delivered), counted with the model family's tokenizer.
            var model = record.Model;
            long input = ReplyPriming;
            foreach (var message in messages)
            {
                input += TokensPerMessage + TokenEstimator.CountTokens(message.Text, model);
            }

            var output = TokenEstimator.CountTokens(responseText, model);
            var tags = record.Tags is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(record.Tags, StringComparer.Ordinal);
            tags[BillingTags.Estimated] = output > 0 ? "input,output" : "input";
            record = record with
            {
                InputTokens = input,
                OutputTokens = output,
                TotalTokens = input + output,
                Status = status ?? UsageStatus.Estimated,
                Tags = tags,
            };
        }
        else
        {
            record = record with { Status = status ?? UsageStatus.UsageMissing };
        }

        _meter.Record(record, scope);
    }
}
