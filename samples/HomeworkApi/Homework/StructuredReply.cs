using System.Text.Json;

namespace HomeworkApi.Homework;

/// <summary>
/// The answer of a structured feature: the model's JSON object, its fields copied as they are, then
/// <c>hintNumber</c> (hints only) and the request's <c>usage</c>, written straight to the response
/// (the same JSON the app's serializer writes, without building a mutable copy of the reply first).
/// A field of the model's own named <c>usage</c> or <c>hintNumber</c> gives way to the app's.
/// </summary>
internal sealed class StructuredReply(JsonDocument reply, int? hintNumber, UsageDto usage) : IResult, IDisposable
{
    private const string ContentType = "application/json; charset=utf-8";
    private static readonly JsonEncodedText UsageName = JsonEncodedText.Encode("usage");
    private static readonly JsonEncodedText HintNumberName = JsonEncodedText.Encode("hintNumber");
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = HomeworkModelClient.Json.Encoder };

    /// <summary>Parses the model's reply: a JSON object holding every property in <paramref name="required"/>, else null.</summary>
    public static JsonDocument? Parse(string text, IReadOnlyList<string> required)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException)
        {
            return null;
        }

        if (document.RootElement.ValueKind == JsonValueKind.Object && HasAll(document.RootElement, required))
        {
            return document;
        }

        document.Dispose();
        return null;
    }

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        using (this)
        {
            var response = httpContext.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = ContentType;
            await using var writer = new Utf8JsonWriter(response.BodyWriter, WriterOptions);
            Write(writer);
        }
    }

    public void Dispose() => reply.Dispose();

    /// <summary>Writes the answer (tests read it without a host).</summary>
    internal void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (var property in reply.RootElement.EnumerateObject())
        {
            if (property.NameEquals(UsageName.EncodedUtf8Bytes) || (hintNumber is not null && property.NameEquals(HintNumberName.EncodedUtf8Bytes)))
            {
                continue;
            }

            property.WriteTo(writer);
        }

        if (hintNumber is { } number)
        {
            writer.WriteNumber(HintNumberName, number);
        }

        writer.WritePropertyName(UsageName);
        JsonSerializer.Serialize(writer, usage, HomeworkJsonContext.Default.UsageDto);
        writer.WriteEndObject();
    }

    private static bool HasAll(JsonElement reply, IReadOnlyList<string> required)
    {
        for (var i = 0; i < required.Count; i++)
        {
            if (!reply.TryGetProperty(required[i], out _))
            {
                return false;
            }
        }

        return true;
    }
}
