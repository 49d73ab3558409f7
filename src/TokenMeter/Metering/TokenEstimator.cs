using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace TokenMeter.Metering;

/// <summary>
/// Estimates the input tokens of a request whose reply reported no usage, with the o200k
/// tokenizer (gpt-4o, gpt-4.1, o-series, gpt-5): the text of its messages / input / instructions
/// plus OpenAI's per-message framing.
/// </summary>
internal static class TokenEstimator
{
    private const int TokensPerMessage = 3;
    private const int ReplyPriming = 3;

    private static readonly Lazy<Tokenizer> O200k = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));

    /// <summary>Counts the input tokens of a JSON request body; 0 when it has no text.</summary>
    public static long EstimateInputTokens(ReadOnlySpan<byte> json)
    {
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
                        tokens += O200k.Value.CountTokens(reader.GetString()!);
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

    /// <summary>Counts the tokens of a text.</summary>
    public static long CountTokens(string text) => string.IsNullOrEmpty(text) ? 0 : O200k.Value.CountTokens(text);
}
