using System.Text.Json;

namespace TokenMeter.Metering;

/// <summary>
/// Reads <c>model</c>, <c>service_tier</c> and <c>usage</c> from an OpenAI reply with a forward-only
/// <see cref="Utf8JsonReader"/> scan (no DOM): chat, responses (also nested under <c>response</c>
/// in stream events), embeddings, images and transcriptions (tokens or duration). The top level is
/// walked with <see cref="JsonMembers"/>, which steps over choices and data without tokenising
/// them; a body it does not understand is read token by token instead.
/// </summary>
internal static class UsageParser
{
    /// <summary>Parses one complete JSON object. Returns false (and leaves <paramref name="usage"/> partly filled) when the text is not a JSON object.</summary>
    public static bool TryParse(ReadOnlySpan<byte> json, ref ParsedUsage usage)
    {
        var before = usage;
        try
        {
            var members = JsonMembers.Of(json);
            if (ParseMembers(ref members, ref usage, nested: false))
            {
                return true;
            }
        }
        catch (JsonException)
        {
        }

        // Not the plain shape the fast walk understands: read every token.
        usage = before;
        return TryParseTokens(json, ref usage);
    }

    /// <summary>The same as <see cref="TryParse"/>, reading every token with <see cref="Utf8JsonReader"/>.</summary>
    internal static bool TryParseTokens(ReadOnlySpan<byte> json, ref ParsedUsage usage)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            ParseObject(ref reader, ref usage, nested: false);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    // The fast walk: only the members named here are read; choices, output and data are stepped over.
    private static bool ParseMembers(ref JsonMembers members, ref ParsedUsage usage, bool nested)
    {
        while (members.MoveNext())
        {
            var name = members.Name;
            var value = members.Value;
            if (name.SequenceEqual("usage"u8))
            {
                if (value[0] == (byte)'{')
                {
                    var reader = new Utf8JsonReader(value);
                    reader.Read();
                    ParseUsage(ref reader, ref usage);
                }
            }
            else if (name.SequenceEqual("model"u8))
            {
                usage.Model = members.ValueAsString() ?? usage.Model;
            }
            else if (name.SequenceEqual("service_tier"u8))
            {
                usage.ServiceTier = members.ValueAsString() ?? usage.ServiceTier;
            }
            else if (!nested && name.SequenceEqual("type"u8))
            {
                usage.EventType = members.ValueAsString() ?? usage.EventType;
            }
            else if (!nested && usage.CountData && name.SequenceEqual("data"u8) && value[0] == (byte)'[')
            {
                var reader = new Utf8JsonReader(value);
                reader.Read();
                usage.Images = CountItems(ref reader);
            }
            else if (!nested && name.SequenceEqual("response"u8) && value[0] == (byte)'{')
            {
                var inner = JsonMembers.Of(value);
                if (!ParseMembers(ref inner, ref usage, nested: true))
                {
                    return false;
                }
            }
        }

        return !members.Failed;
    }


    private static void ParseObject(ref Utf8JsonReader reader, ref ParsedUsage usage, bool nested)
    {
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                return;
            }

            if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseUsage(ref reader, ref usage);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    usage.Model = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("service_tier"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    usage.ServiceTier = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (!nested && reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    usage.EventType = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (!nested && usage.CountData && reader.ValueTextEquals("data"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    usage.Images = CountItems(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (!nested && reader.ValueTextEquals("response"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseObject(ref reader, ref usage, nested: true);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ParseUsage(ref Utf8JsonReader reader, ref ParsedUsage usage)
    {
        usage.HasUsage = true;
        var sawTotal = false;
        var duration = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8))
            {
                usage.InputTokens = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8))
            {
                usage.OutputTokens = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("total_tokens"u8))
            {
                usage.TotalTokens = ReadLong(ref reader);
                sawTotal = true;
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("input_tokens_details"u8) || reader.ValueTextEquals("input_token_details"u8))
            {
                reader.Read();
                ParseDetails(ref reader, ref usage.CachedInputTokens, ref usage.AudioInputTokens, ref usage.CacheWriteTokens, ref usage.ImageInputTokens);
            }
            else if (reader.ValueTextEquals("completion_tokens_details"u8) || reader.ValueTextEquals("output_tokens_details"u8))
            {
                reader.Read();
                long unused = 0, unusedImage = 0;
                ParseDetails(ref reader, ref usage.ReasoningTokens, ref usage.AudioOutputTokens, ref unused, ref unusedImage);
            }
            else if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                duration = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("duration"u8);
            }
            else if (reader.ValueTextEquals("seconds"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number)
                {
                    usage.DurationSeconds = reader.GetDouble();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (duration && usage.DurationSeconds is null)
        {
            usage.DurationSeconds = 0;
        }

        if (!sawTotal)
        {
            usage.TotalTokens = usage.InputTokens + usage.OutputTokens;
        }
    }

    // Input details carry cached_tokens, cache_write_tokens, audio_tokens and (images) image_tokens;
    // output details carry reasoning_tokens and audio_tokens.
    private static void ParseDetails(ref Utf8JsonReader reader, ref long first, ref long audio, ref long cacheWrite, ref long image)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.ValueTextEquals("cached_tokens"u8) || reader.ValueTextEquals("reasoning_tokens"u8))
            {
                first = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("audio_tokens"u8))
            {
                audio = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("cache_write_tokens"u8))
            {
                cacheWrite = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("image_tokens"u8))
            {
                image = ReadLong(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    // The reader is on a StartArray; counts its items and leaves the reader on its EndArray.
    private static int CountItems(ref Utf8JsonReader reader)
    {
        var count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            reader.Skip();
            count++;
        }

        return count;
    }

    private static long ReadLong(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) ? value : 0;
    }
}
