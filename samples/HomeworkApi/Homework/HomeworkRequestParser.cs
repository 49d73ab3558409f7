using System.Buffers.Text;
using System.Globalization;
using System.Text.Json;

namespace HomeworkApi.Homework;

/// <summary>Reads and checks a homework body by hand, so every rejection says exactly what is wrong.</summary>
internal static class HomeworkRequestParser
{
    public const int MaxImageBytes = 10 * 1024 * 1024;
    public const int MaxTextLength = 20_000;
    public const int MaxChatMessages = 50;
    public const int MaxPreviousHints = 20;
    public const int MaxTags = 20;

    /// <summary>The request, or the sentence to answer 400 with.</summary>
    public static (HomeworkRequest? Request, string? Error) Parse(HomeworkFeature feature, JsonElement body)
    {
        try
        {
            return (ParseCore(feature, body), null);
        }
        catch (InvalidBodyException ex)
        {
            return (null, ex.Message);
        }
    }

    private static HomeworkRequest ParseCore(HomeworkFeature feature, JsonElement body)
    {
        var userId = OptionalId(body, "userId");
        var gradeLevel = OptionalScalar(body, "gradeLevel", 40);
        var subject = OptionalString(body, "subject", 100);
        var sessionId = OptionalScalar(body, "sessionId", 200);
        var problemId = OptionalScalar(body, "problemId", 200);
        var tags = Metadata(body);

        string? problemText = null;
        HomeworkImage? image = null;
        string? answer = null;
        IReadOnlyList<string> previousHints = [];
        IReadOnlyList<ChatTurn> messages = [];
        string? problemContext = null;
        var stream = false;

        switch (feature)
        {
            case HomeworkFeature.ValidateImage:
                image = Image(body) ?? throw new InvalidBodyException("imageBase64 or imageUrl is required.");
                break;
            case HomeworkFeature.Analyze:
                problemText = OptionalString(body, "problemText", MaxTextLength);
                image = Image(body);
                if (problemText is null && image is null)
                {
                    throw new InvalidBodyException("problemText, imageBase64 or imageUrl is required (at least one).");
                }

                break;
            case HomeworkFeature.Hint:
                problemText = RequiredString(body, "problemText", MaxTextLength);
                previousHints = StringArray(body, "previousHints", MaxPreviousHints);
                break;
            case HomeworkFeature.Verify:
                problemText = RequiredString(body, "problemText", MaxTextLength);
                answer = RequiredString(body, "answer", MaxTextLength);
                break;
            case HomeworkFeature.Chat:
                messages = ChatMessages(body);
                problemContext = OptionalString(body, "problemContext", MaxTextLength);
                stream = OptionalBool(body, "stream");
                break;
        }

        return new HomeworkRequest
        {
            Feature = feature,
            BodyUserId = userId,
            GradeLevel = gradeLevel,
            Subject = subject,
            SessionId = sessionId,
            ProblemId = problemId,
            Tags = tags,
            ProblemText = problemText,
            Image = image,
            Answer = answer,
            PreviousHints = previousHints,
            Messages = messages,
            ProblemContext = problemContext,
            Stream = stream,
        };
    }

    private static bool TryGet(JsonElement body, string name, out JsonElement value) =>
        body.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private static string RequiredString(JsonElement body, string name, int maxLength) =>
        OptionalString(body, name, maxLength) ?? throw new InvalidBodyException($"{name} is required.");

    private static string? OptionalString(JsonElement body, string name, int maxLength)
    {
        if (!TryGet(body, name, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw new InvalidBodyException($"{name} must be a string.");
        }

        var text = value.GetString()!.Trim();
        if (text.Length == 0)
        {
            throw new InvalidBodyException($"{name} must not be empty.");
        }

        if (text.Length > maxLength)
        {
            throw new InvalidBodyException($"{name} is too long: at most {maxLength:N0} characters.");
        }

        return text;
    }

    /// <summary>A string or a number, kept as text (grade levels, session and problem ids).</summary>
    private static string? OptionalScalar(JsonElement body, string name, int maxLength)
    {
        if (!TryGet(body, name, out var value))
        {
            return null;
        }

        var text = value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!.Trim(),
            JsonValueKind.Number => value.GetRawText(),
            _ => throw new InvalidBodyException($"{name} must be a string or a number."),
        };
        if (text.Length == 0)
        {
            throw new InvalidBodyException($"{name} must not be empty.");
        }

        return text.Length <= maxLength ? text : throw new InvalidBodyException($"{name} is too long: at most {maxLength} characters.");
    }

    private static string? OptionalId(JsonElement body, string name)
    {
        if (!TryGet(body, name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.String when value.GetString()!.Trim() is { Length: > 0 and <= 100 } text => text,
            JsonValueKind.String => throw new InvalidBodyException($"{name} must not be empty."),
            JsonValueKind.Number when value.TryGetInt64(out var number) => number.ToString(CultureInfo.InvariantCulture),
            JsonValueKind.Number => throw new InvalidBodyException($"{name} must be a whole number or a string."),
            _ => throw new InvalidBodyException($"{name} must be a string or a number."),
        };
    }

    private static bool OptionalBool(JsonElement body, string name)
    {
        if (!TryGet(body, name, out var value))
        {
            return false;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidBodyException($"{name} must be true or false."),
        };
    }

    private static IReadOnlyList<string> StringArray(JsonElement body, string name, int maxItems)
    {
        if (!TryGet(body, name, out var value))
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidBodyException($"{name} must be an array of strings.");
        }

        if (value.GetArrayLength() > maxItems)
        {
            throw new InvalidBodyException($"{name} may hold at most {maxItems} items.");
        }

        var items = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw new InvalidBodyException($"{name} must be an array of strings.");
            }

            var text = item.GetString()!.Trim();
            if (text.Length > MaxTextLength)
            {
                throw new InvalidBodyException($"{name} items are too long: at most {MaxTextLength:N0} characters each.");
            }

            if (text.Length > 0)
            {
                items.Add(text);
            }
        }

        return items;
    }

    private static IReadOnlyList<ChatTurn> ChatMessages(JsonElement body)
    {
        if (!TryGet(body, "messages", out var value))
        {
            throw new InvalidBodyException("messages is required.");
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidBodyException("messages must be an array of {role, content} objects.");
        }

        var count = value.GetArrayLength();
        if (count == 0)
        {
            throw new InvalidBodyException("messages must hold at least one message.");
        }

        if (count > MaxChatMessages)
        {
            throw new InvalidBodyException($"messages may hold at most {MaxChatMessages} messages; start a new chat.");
        }

        var turns = new List<ChatTurn>(count);
        var index = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidBodyException($"messages[{index}] must be an object with role and content.");
            }

            var role = item.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
            if (role is not ("user" or "assistant"))
            {
                throw new InvalidBodyException($"messages[{index}].role must be \"user\" or \"assistant\".");
            }

            if (!item.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(c.GetString()))
            {
                throw new InvalidBodyException($"messages[{index}].content must be a non-empty string.");
            }

            var content = c.GetString()!;
            if (content.Length > MaxTextLength)
            {
                throw new InvalidBodyException($"messages[{index}].content is too long: at most {MaxTextLength:N0} characters.");
            }

            turns.Add(new ChatTurn(role, content));
            index++;
        }

        if (turns[^1].Role != "user")
        {
            throw new InvalidBodyException("The last of messages must be the student's (role \"user\").");
        }

        return turns;
    }

    private static Dictionary<string, string>? Metadata(JsonElement body)
    {
        if (!TryGet(body, "metadata", out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidBodyException("metadata must be a JSON object of tags.");
        }

        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            if (tags.Count == MaxTags)
            {
                throw new InvalidBodyException($"metadata may hold at most {MaxTags} tags.");
            }

            if (property.Name.Length is 0 or > 100)
            {
                throw new InvalidBodyException("metadata keys must be 1 to 100 characters long.");
            }

            var text = property.Value.ValueKind switch
            {
                JsonValueKind.String => property.Value.GetString()!,
                JsonValueKind.Null => null,
                _ => property.Value.GetRawText(),
            };
            if (text is null)
            {
                continue;
            }

            if (text.Length > 1000)
            {
                throw new InvalidBodyException($"metadata.{property.Name} is too long: at most 1,000 characters.");
            }

            tags[property.Name] = text;
        }

        return tags.Count == 0 ? null : tags;
    }

    private static HomeworkImage? Image(JsonElement body)
    {
        var hasBase64 = TryGet(body, "imageBase64", out var base64);
        var hasUrl = TryGet(body, "imageUrl", out var url);
        if (hasBase64 && hasUrl)
        {
            throw new InvalidBodyException("Send either imageBase64 or imageUrl, not both.");
        }

        if (hasUrl)
        {
            if (url.ValueKind != JsonValueKind.String)
            {
                throw new InvalidBodyException("imageUrl must be a string.");
            }

            var text = url.GetString()!.Trim();
            if (text.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
            {
                return DecodeBase64("imageUrl", text);
            }

            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) || text.Length > 4096)
            {
                throw new InvalidBodyException("imageUrl must be an absolute http(s) URL or a data: URI.");
            }

            return new HomeworkImage(null, null, uri);
        }

        if (!hasBase64)
        {
            return null;
        }

        if (base64.ValueKind != JsonValueKind.String)
        {
            throw new InvalidBodyException("imageBase64 must be a string.");
        }

        return DecodeBase64("imageBase64", base64.GetString()!);
    }

    /// <summary>Plain base64 or a data URI (<c>data:image/png;base64,...</c>) of a PNG, JPEG, GIF or WebP image of at most 10 MiB.</summary>
    private static HomeworkImage DecodeBase64(string name, string text)
    {
        string? declaredType = null;
        var payload = text.AsSpan().Trim();
        if (payload.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            var comma = payload.IndexOf(',');
            var header = comma < 0 ? ReadOnlySpan<char>.Empty : payload[5..comma];
            if (comma < 0 || !header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidBodyException($"{name} is not a base64 data URI: expected data:image/<type>;base64,<data>.");
            }

            declaredType = header[..^7].ToString().ToLowerInvariant();
            payload = payload[(comma + 1)..];
        }

        if (payload.IsEmpty)
        {
            throw new InvalidBodyException($"{name} must not be empty.");
        }

        // Refuse oversized images before decoding anything: base64 holds 3 bytes per 4 characters.
        if ((long)payload.Length / 4 * 3 > MaxImageBytes + 3)
        {
            throw new InvalidBodyException($"{name} is larger than 10 MiB; send a smaller or more compressed image.");
        }

        if (!Base64.IsValid(payload, out var decodedLength))
        {
            throw new InvalidBodyException($"{name} is not valid base64.");
        }

        if (decodedLength > MaxImageBytes)
        {
            throw new InvalidBodyException($"{name} is larger than 10 MiB; send a smaller or more compressed image.");
        }

        var bytes = new byte[decodedLength];
        if (!Convert.TryFromBase64Chars(payload, bytes, out var written))
        {
            throw new InvalidBodyException($"{name} is not valid base64.");
        }

        var sniffed = Sniff(bytes.AsSpan(0, written))
            ?? throw new InvalidBodyException($"{name} is not a PNG, JPEG, GIF or WebP image.");
        if (declaredType is not null && declaredType != sniffed && !(declaredType == "image/jpg" && sniffed == "image/jpeg"))
        {
            throw new InvalidBodyException($"{name} says {declaredType} but holds {sniffed}.");
        }

        return new HomeworkImage(BinaryData.FromBytes(bytes.AsMemory(0, written)), sniffed, null);
    }

    private static string? Sniff(ReadOnlySpan<byte> bytes)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return "image/png";
        }

        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]))
        {
            return "image/jpeg";
        }

        if (bytes.StartsWith("GIF87a"u8) || bytes.StartsWith("GIF89a"u8))
        {
            return "image/gif";
        }

        if (bytes.Length >= 12 && bytes.StartsWith("RIFF"u8) && bytes[8..12].SequenceEqual("WEBP"u8))
        {
            return "image/webp";
        }

        return null;
    }

    private sealed class InvalidBodyException(string message) : Exception(message);
}
