using System.Text;
using System.Text.Json;

namespace TokenMeter.Metering;

/// <summary>The few request fields metering needs, read with one forward-only scan of the body.</summary>
internal struct RequestInfo
{
    public string? Model;
    public string? User;
    public bool Stream;
    public bool HasStreamOptions;

    /// <summary>Speech: the text to speak (<c>input</c>, and <c>instructions</c> for models billed by tokens).</summary>
    public string? SpeechInput;
    public string? SpeechInstructions;

    /// <summary>Images: the requested size and quality (DALL·E bills per image by these).</summary>
    public string? ImageSize;
    public string? ImageQuality;

    /// <summary>
    /// Reads what the call kinds billed by something other than tokens need: a speech request's
    /// text, an image request's size and quality. A second scan, only for those call kinds.
    /// </summary>
    public void ReadBillingFields(ReadOnlySpan<byte> json, string operation)
    {
        if (operation is not (UsageOperation.AudioSpeech or UsageOperation.Images))
        {
            return;
        }

        try
        {
            var members = JsonMembers.Of(json);
            while (members.MoveNext())
            {
                var name = members.Name;
                if (operation == UsageOperation.AudioSpeech && name.SequenceEqual("input"u8))
                {
                    SpeechInput = members.ValueAsString();
                }
                else if (operation == UsageOperation.AudioSpeech && name.SequenceEqual("instructions"u8))
                {
                    SpeechInstructions = members.ValueAsString();
                }
                else if (name.SequenceEqual("size"u8))
                {
                    ImageSize = members.ValueAsString();
                }
                else if (name.SequenceEqual("quality"u8))
                {
                    ImageQuality = members.ValueAsString();
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON: priced without these fields.
        }
    }

    /// <summary>
    /// True when a chat request's fields cannot change how it is sent (no <c>stream_options</c> to add),
    /// so they may be read when the record is built: the body has no <c>stream</c> member, or ends with
    /// the <c>stream_options</c> asking for usage that the SDK's streaming methods send (its last member).
    /// </summary>
    public static bool IsSentAsIs(ReadOnlySpan<byte> json) =>
        json.IndexOf("\"stream\""u8) < 0 || json.TrimEnd(" \t\r\n"u8).EndsWith("\"stream_options\":{\"include_usage\":true}}"u8);

    /// <summary>Reads what metering needs from a JSON request body: its fields, the billing fields of images and speech, the default image model.</summary>
    public static RequestInfo Read(ReadOnlySpan<byte> json, string operation)
    {
        var info = FromJson(json);
        info.ReadBillingFields(json, operation);
        if (operation == UsageOperation.Images && info.Model is null)
        {
            // The API's default image model.
            info.Model = "dall-e-2";
        }

        return info;
    }

    /// <summary>Scans the top level of a JSON request body for <c>model</c>, <c>user</c>, <c>stream</c> and <c>stream_options</c>.</summary>
    public static RequestInfo FromJson(ReadOnlySpan<byte> json)
    {
        var info = default(RequestInfo);
        try
        {
            // Fast walk over the top level, stepping over messages / input without tokenising them.
            var members = JsonMembers.Of(json);
            while (members.MoveNext())
            {
                var name = members.Name;
                if (name.SequenceEqual("model"u8))
                {
                    info.Model = members.ValueAsString();
                }
                else if (name.SequenceEqual("user"u8))
                {
                    info.User = members.ValueAsString();
                }
                else if (name.SequenceEqual("stream"u8))
                {
                    info.Stream = members.Value.SequenceEqual("true"u8);
                }
                else if (name.SequenceEqual("stream_options"u8))
                {
                    info.HasStreamOptions = !members.Value.SequenceEqual("null"u8);
                }
            }

            if (!members.Failed)
            {
                return info;
            }
        }
        catch (JsonException)
        {
        }

        info = default;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return info;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    info.Model = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else if (reader.ValueTextEquals("user"u8))
                {
                    reader.Read();
                    info.User = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    info.Stream = reader.TokenType == JsonTokenType.True;
                }
                else if (reader.ValueTextEquals("stream_options"u8))
                {
                    reader.Read();
                    info.HasStreamOptions = reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON: metering goes on without the request's fields.
        }

        return info;
    }

    /// <summary>Finds the <c>model</c> (and for images <c>size</c> and <c>quality</c>) fields of a multipart/form-data body.</summary>
    public static RequestInfo FromMultipart(ReadOnlySpan<byte> body)
    {
        var info = default(RequestInfo);
        info.Model = FormField(body, "\"model\""u8, "model"u8);
        info.ImageSize = FormField(body, "\"size\""u8, "size"u8);
        info.ImageQuality = FormField(body, "\"quality\""u8, "quality"u8);
        return info;
    }

    private static string? FormField(ReadOnlySpan<byte> body, ReadOnlySpan<byte> quotedName, ReadOnlySpan<byte> name)
    {
        ReadOnlySpan<byte> prefix = "name="u8;
        var skip = 0;
        var at = -1;
        for (var from = 0; from < body.Length;)
        {
            var hit = body[from..].IndexOf(prefix);
            if (hit < 0)
            {
                break;
            }

            var after = body[(from + hit + prefix.Length)..];
            if (after.StartsWith(quotedName))
            {
                at = from + hit;
                skip = prefix.Length + quotedName.Length;
                break;
            }

            if (after.StartsWith(name) && after.Length > name.Length && after[name.Length] is (byte)'\r' or (byte)';')
            {
                at = from + hit;
                skip = prefix.Length + name.Length;
                break;
            }

            from += hit + prefix.Length;
        }

        if (at < 0)
        {
            return null;
        }

        var rest = body[(at + skip)..];
        var start = rest.IndexOf("\r\n\r\n"u8);
        if (start < 0)
        {
            return null;
        }

        rest = rest[(start + 4)..];
        var end = rest.IndexOf("\r\n"u8);
        return end > 0 && end < 256 ? Encoding.UTF8.GetString(rest[..end]) : null;
    }

    /// <summary>
    /// Returns the body with <c>"stream_options":{"include_usage":true}</c> added as the first
    /// property of the top-level object, so that a streamed chat reply ends with its usage.
    /// </summary>
    public static byte[]? WithIncludeUsage(ReadOnlySpan<byte> json)
    {
        var open = json.IndexOf((byte)'{');
        if (open < 0)
        {
            return null;
        }

        ReadOnlySpan<byte> insert = "\"stream_options\":{\"include_usage\":true},"u8;
        var result = new byte[json.Length + insert.Length];
        json[..(open + 1)].CopyTo(result);
        insert.CopyTo(result.AsSpan(open + 1));
        json[(open + 1)..].CopyTo(result.AsSpan(open + 1 + insert.Length));
        return result;
    }
}
