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

    /// <summary>Finds the <c>model</c> field of a multipart/form-data body.</summary>
    public static RequestInfo FromMultipart(ReadOnlySpan<byte> body)
    {
        var info = default(RequestInfo);
        ReadOnlySpan<byte> quoted = "name=\"model\""u8;
        var at = body.IndexOf(quoted);
        var skip = quoted.Length;
        if (at < 0)
        {
            at = body.IndexOf("name=model"u8);
            skip = "name=model".Length;
        }

        if (at < 0)
        {
            return info;
        }

        var rest = body[(at + skip)..];
        var start = rest.IndexOf("\r\n\r\n"u8);
        if (start < 0)
        {
            return info;
        }

        rest = rest[(start + 4)..];
        var end = rest.IndexOf("\r\n"u8);
        if (end > 0 && end < 256)
        {
            info.Model = Encoding.UTF8.GetString(rest[..end]);
        }

        return info;
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
