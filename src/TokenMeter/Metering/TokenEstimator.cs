using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace TokenMeter.Metering;

/// <summary>
/// Estimates the tokens of a call whose reply reported no usage, with the tokenizer of the
/// model's family: o200k (gpt-4o, gpt-4.1, o-series, gpt-5 and later) or cl100k (gpt-4,
/// gpt-3.5-turbo, the embedding models). Input: the text of the request's messages / input /
/// instructions plus OpenAI's per-message framing. Output: the text delivered to the caller.
/// </summary>
internal static class TokenEstimator
{
    private const int TokensPerMessage = 3;
    private const int ReplyPriming = 3;

    private static readonly Lazy<Tokenizer> O200k = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));
    private static readonly Lazy<Tokenizer> Cl100k = new(() => TiktokenTokenizer.CreateForModel("gpt-4"));

    /// <summary>The tokenizer of a model's family; o200k when the model is unknown.</summary>
    public static Tokenizer For(string? model)
    {
        if (string.IsNullOrEmpty(model))
        {
            return O200k.Value;
        }

        var name = model.StartsWith("ft:", StringComparison.OrdinalIgnoreCase) ? model[3..] : model;
        var cl100k = name.Equals("gpt-4", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-4-", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-3.5", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("text-embedding-", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("davinci-002", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("babbage-002", StringComparison.OrdinalIgnoreCase);
        return cl100k ? Cl100k.Value : O200k.Value;
    }

    /// <summary>Counts the input tokens of a JSON request body with the o200k tokenizer; 0 when it has no text.</summary>
    public static long EstimateInputTokens(ReadOnlySpan<byte> json) => EstimateInputTokens(json, null);

    /// <summary>Counts the input tokens of a JSON request body with the model's tokenizer; 0 when it has no text.</summary>
    public static long EstimateInputTokens(ReadOnlySpan<byte> json, string? model)
    {
        var tokenizer = For(model);
        long tokens = 0;
        var messages = 0;
        try
        {
            var reader = new Utf8JsonReader(json);
            var countNext = false;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        countNext = reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("text"u8)
                            || reader.ValueTextEquals("input"u8) || reader.ValueTextEquals("instructions"u8)
                            || reader.ValueTextEquals("prompt"u8) || reader.ValueTextEquals("name"u8);
                        if (reader.ValueTextEquals("role"u8))
                        {
                            messages++;
                        }

                        break;
                    case JsonTokenType.String when countNext:
                        tokens += tokenizer.CountTokens(reader.GetString()!);
                        countNext = false;
                        break;
                    case JsonTokenType.StartArray:
                        break;
                    default:
                        if (reader.TokenType != JsonTokenType.StartObject)
                        {
                            countNext = false;
                        }

                        break;
                }
            }
        }
        catch (JsonException)
        {
            return tokens;
        }

        if (tokens == 0)
        {
            return 0;
        }

        return tokens + (messages * TokensPerMessage) + ReplyPriming;
    }

    /// <summary>Counts the tokens of a text with the o200k tokenizer.</summary>
    public static long CountTokens(string text) => CountTokens(text, null);

    /// <summary>Counts the tokens of a text with the model's tokenizer.</summary>
    public static long CountTokens(string? text, string? model) => string.IsNullOrEmpty(text) ? 0 : For(model).CountTokens(text);

    /// <summary>
    /// The text a buffered chat or responses reply delivered: every string value of a
    /// <c>content</c>, <c>text</c>, <c>refusal</c> or <c>arguments</c> member.
    /// </summary>
    public static string ReplyText(ReadOnlySpan<byte> json)
    {
        var text = new StringBuilder();
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
            var take = false;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName)
                {
                    take = reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("text"u8)
                        || reader.ValueTextEquals("refusal"u8) || reader.ValueTextEquals("arguments"u8);
                }
                else
                {
                    if (take && reader.TokenType == JsonTokenType.String)
                    {
                        text.Append(reader.GetString());
                    }

                    take = false;
                }
            }
        }
        catch (JsonException)
        {
            // A broken reply: what was read so far.
        }

        return text.ToString();
    }
}
