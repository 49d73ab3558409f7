using System.ClientModel;
using System.Text.Json;
using HomeworkApi.Diagnostics;
using HomeworkApi.Hosting;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Attribution;

namespace HomeworkApi.Homework;

/// <summary>
/// Calls the model through the metered <see cref="OpenAIClient"/> and turns the outcome into the
/// HTTP answer: the model's JSON with the <c>usage</c> of the call, or a 502 problem when the model
/// endpoint fails (error status, timeout, unreachable, malformed reply).
/// </summary>
internal sealed class HomeworkModelClient(OpenAIClient client, ILogger<HomeworkModelClient> logger)
{
    // One ChatClient per model, not one per request.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ChatClient> _chatClients = new(StringComparer.Ordinal);

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// A chat completion whose reply must be a JSON object of the named schema, answered with its
    /// fields, <c>hintNumber</c> when one is given, and <c>usage</c>.
    /// </summary>
    public async Task<IResult> CompleteStructuredAsync(string model, List<ChatMessage> messages, string schema, int maxOutputTokens, int? hintNumber, CancellationToken cancellationToken)
    {
        // A scope of our own, nested in the request's: its totals are exactly this request's calls.
        using var scope = UsageScope.Begin(new UsageContext());
        var options = new ChatCompletionOptions { ResponseFormat = HomeworkPrompts.Schema(schema), MaxOutputTokenCount = maxOutputTokens };
        var (completion, failure) = await CallAsync(model, messages, options, cancellationToken);
        if (failure is not null)
        {
            return failure;
        }

        if (completion!.Refusal is { Length: > 0 } refusal)
        {
            Log.ModelRefused(logger, model);
            return Problems.BadGateway("The model declined to answer: " + refusal);
        }

        if (StructuredReply.Parse(TextOf(completion), HomeworkPrompts.RequiredProperties(schema)) is not { } reply)
        {
            Log.ModelMalformed(logger, model, "the reply does not follow the " + schema + " schema");
            return Problems.BadGateway($"The model's reply was not the JSON object the endpoint asked for ({schema}).");
        }

        return new StructuredReply(reply, hintNumber, UsageDto.From(scope.Totals));
    }

    /// <summary>A plain-text chat completion, answered as <c>{reply, usage}</c>.</summary>
    public async Task<IResult> CompleteTextAsync(string model, List<ChatMessage> messages, int maxOutputTokens, CancellationToken cancellationToken)
    {
        using var scope = UsageScope.Begin(new UsageContext());
        var options = new ChatCompletionOptions { MaxOutputTokenCount = maxOutputTokens };
        var (completion, failure) = await CallAsync(model, messages, options, cancellationToken);
        if (failure is not null)
        {
            return failure;
        }

        var text = TextOf(completion!);
        if (text.Length == 0)
        {
            Log.ModelMalformed(logger, model, "the reply has no text");
            return Problems.BadGateway("The model's reply had no text.");
        }

        return TypedResults.Json(new ChatReply(text, UsageDto.From(scope.Totals)), Json);
    }

    /// <summary>
    /// Starts a streamed chat completion. The model is called (and its first update awaited) here,
    /// so a failing endpoint still gets a 502 problem; the rest streams as server-sent events.
    /// </summary>
    public async Task<IResult> StreamTextAsync(HttpContext http, string model, List<ChatMessage> messages, int maxOutputTokens, CancellationToken cancellationToken)
    {
        var scope = UsageScope.Begin(new UsageContext());
        try
        {
            var options = new ChatCompletionOptions { MaxOutputTokenCount = maxOutputTokens };
            var updates = ChatClientFor(model).CompleteChatStreamingAsync(messages, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
            bool first;
            try
            {
                first = await updates.MoveNextAsync();
            }
            catch (Exception ex) when (Describe(ex, cancellationToken) is { } detail)
            {
                await updates.DisposeAsync();
                Log.ModelFailed(logger, ex, model, detail);
                return Problems.BadGateway(detail);
            }

            return ChatStream.Result(http, updates, first, scope, this, model);
        }
        finally
        {
            // Restores the enclosing scope in this flow; the stream keeps adding to this one's totals.
            scope.Dispose();
        }
    }

    /// <summary>The reply's text parts, joined (a reply is nearly always one part).</summary>
    private static string TextOf(ChatCompletion completion) => completion.Content is [{ Kind: ChatMessageContentPartKind.Text } only]
        ? only.Text
        : string.Concat(completion.Content.Where(p => p.Kind == ChatMessageContentPartKind.Text).Select(p => p.Text));

    private ChatClient ChatClientFor(string model) => _chatClients.GetOrAdd(model, static (m, c) => c.GetChatClient(m), client);

    internal string? DescribeFailure(Exception ex, string model, CancellationToken cancellationToken)
    {
        var detail = Describe(ex, cancellationToken);
        if (detail is not null)
        {
            Log.ModelFailed(logger, ex, model, detail);
        }

        return detail;
    }

    private async Task<(ChatCompletion? Completion, IResult? Failure)> CallAsync(string model, List<ChatMessage> messages, ChatCompletionOptions options, CancellationToken cancellationToken)
    {
        try
        {
            ChatCompletion completion = await ChatClientFor(model).CompleteChatAsync(messages, options, cancellationToken);
            return (completion, null);
        }
        catch (Exception ex) when (Describe(ex, cancellationToken) is { } detail)
        {
            Log.ModelFailed(logger, ex, model, detail);
            return (null, Problems.BadGateway(detail));
        }
    }

    /// <summary>What went wrong with the model endpoint, in a sentence; null for the caller's own cancellation and for bugs.</summary>
    private static string? Describe(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        _ when cancellationToken.IsCancellationRequested => null,
        ClientResultException { Status: > 0 } e => $"The model endpoint answered with HTTP {e.Status}.",
        ClientResultException => "The model endpoint could not be reached.",
        OperationCanceledException => "The model endpoint did not answer in time.",
        HttpRequestException => "The model endpoint could not be reached.",
        IOException => "The connection to the model endpoint broke.",
        JsonException or FormatException or InvalidOperationException or KeyNotFoundException or ArgumentException => "The model endpoint sent a malformed reply.",
        _ => null,
    };
}

/// <summary>The answer of a non-streamed chat.</summary>
internal sealed record ChatReply(string Reply, UsageDto Usage);
