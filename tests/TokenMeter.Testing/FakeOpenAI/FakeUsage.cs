namespace TokenMeter.Testing.FakeOpenAI;

/// <summary>Token counts the fake server reports in a reply's <c>usage</c>.</summary>
/// <remarks>Cached and audio input tokens are parts of <see cref="PromptTokens"/>; reasoning and audio output tokens are parts of <see cref="CompletionTokens"/>, as OpenAI reports them.</remarks>
public sealed record FakeUsage
{
    /// <summary>Default usage: 12 prompt tokens, 7 completion tokens.</summary>
    public static FakeUsage Default { get; } = new();

    /// <summary>Prompt (input) tokens.</summary>
    public int PromptTokens { get; init; } = 12;

    /// <summary>Completion (output) tokens.</summary>
    public int CompletionTokens { get; init; } = 7;

    /// <summary>Cached prompt tokens.</summary>
    public int CachedTokens { get; init; }

    /// <summary>Prompt tokens written to the prompt cache (<c>cache_write_tokens</c>); sent only when not zero.</summary>
    public int CacheWriteTokens { get; init; }

    /// <summary>Images: image input tokens (<c>input_tokens_details.image_tokens</c>), a part of <see cref="PromptTokens"/>.</summary>
    public int ImageInputTokens { get; init; }

    /// <summary>Reasoning tokens.</summary>
    public int ReasoningTokens { get; init; }

    /// <summary>Audio prompt tokens.</summary>
    public int AudioPromptTokens { get; init; }

    /// <summary>Audio completion tokens.</summary>
    public int AudioCompletionTokens { get; init; }

    /// <summary>For transcriptions: report <c>{"type":"duration","seconds":N}</c> instead of tokens.</summary>
    public double? DurationSeconds { get; init; }

    /// <summary>Total tokens.</summary>
    public int TotalTokens => PromptTokens + CompletionTokens;
}
