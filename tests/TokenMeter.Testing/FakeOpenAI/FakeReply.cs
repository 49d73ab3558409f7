namespace TokenMeter.Testing.FakeOpenAI;

/// <summary>What the fake server does with one request.</summary>
public enum FakeReplyKind
{
    /// <summary>A well-formed success reply in the endpoint's exact wire format (streamed when the request asks).</summary>
    Success,

    /// <summary>An HTTP error with an OpenAI-style error body (<see cref="FakeReply.StatusCode"/>).</summary>
    HttpError,

    /// <summary>Status 200 with a body that is not valid JSON.</summary>
    MalformedJson,

    /// <summary>A success reply without any <c>usage</c> (a stream without its usage chunk / completed event).</summary>
    MissingUsage,

    /// <summary>A stream that sends <see cref="FakeReply.CutAfterChunks"/> chunks and then drops the connection.</summary>
    CutStream,

    /// <summary>The connection is dropped before any reply is sent.</summary>
    DropConnection,
}

/// <summary>A scripted reply of the fake server. Enqueue it with <see cref="FakeOpenAIServer.Enqueue"/>, or set it as <see cref="FakeOpenAIServer.DefaultReply"/>.</summary>
public sealed record FakeReply
{
    /// <summary>A normal success reply with <see cref="FakeUsage.Default"/>.</summary>
    public static FakeReply Ok { get; } = new();

    /// <summary>What to do.</summary>
    public FakeReplyKind Kind { get; init; } = FakeReplyKind.Success;

    /// <summary>Usage to report.</summary>
    public FakeUsage Usage { get; init; } = FakeUsage.Default;

    /// <summary>The assistant's text; streamed word by word.</summary>
    public string Text { get; init; } = "The answer is forty two, as you suspected.";

    /// <summary>The model the reply reports; null echoes the requested model.</summary>
    public string? Model { get; init; }

    /// <summary>Suffix of the reply's ids (<c>chatcmpl-fake{Id}</c>); null numbers replies in arrival order.</summary>
    public string? Id { get; init; }

    /// <summary>The service tier the reply reports.</summary>
    public string? ServiceTier { get; init; } = "default";

    /// <summary>HTTP status for <see cref="FakeReplyKind.HttpError"/>.</summary>
    public int StatusCode { get; init; } = 500;

    /// <summary>When set, sent as <c>retry-after-ms</c> (and <c>retry-after</c> rounded up to seconds).</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>For <see cref="FakeReplyKind.HttpError"/>: include this usage in the error body.</summary>
    public bool UsageInError { get; init; }

    /// <summary>Wait this long before answering.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Wait this long between streamed chunks.</summary>
    public TimeSpan ChunkDelay { get; init; }

    /// <summary>For <see cref="FakeReplyKind.CutStream"/>: how many events are sent before the connection drops (after a pause of <see cref="ChunkDelay"/>, or 50 ms).</summary>
    public int CutAfterChunks { get; init; } = 2;

    /// <summary>An HTTP error reply.</summary>
    /// <param name="statusCode">The status.</param>
    /// <param name="retryAfter">Optional retry-after.</param>
    /// <returns>The reply.</returns>
    public static FakeReply Error(int statusCode, TimeSpan? retryAfter = null) =>
        new() { Kind = FakeReplyKind.HttpError, StatusCode = statusCode, RetryAfter = retryAfter };

    /// <summary>A success reply with the given usage.</summary>
    /// <param name="promptTokens">Prompt tokens.</param>
    /// <param name="completionTokens">Completion tokens.</param>
    /// <param name="cachedTokens">Cached prompt tokens.</param>
    /// <param name="reasoningTokens">Reasoning tokens.</param>
    /// <returns>The reply.</returns>
    public static FakeReply WithUsage(int promptTokens, int completionTokens, int cachedTokens = 0, int reasoningTokens = 0) =>
        new() { Usage = new FakeUsage { PromptTokens = promptTokens, CompletionTokens = completionTokens, CachedTokens = cachedTokens, ReasoningTokens = reasoningTokens } };
}
