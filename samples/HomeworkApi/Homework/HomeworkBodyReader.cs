using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using HomeworkApi.Hosting;
using Microsoft.Extensions.Options;

namespace HomeworkApi.Homework;

/// <summary>The homework bodies and the answers' <c>usage</c>, source-generated (registered first in the HTTP JSON options' resolver chain).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ValidateImageBody))]
[JsonSerializable(typeof(AnalyzeBody))]
[JsonSerializable(typeof(HintBody))]
[JsonSerializable(typeof(VerifyBody))]
[JsonSerializable(typeof(ChatBody))]
[JsonSerializable(typeof(UsageDto))]
internal sealed partial class HomeworkJsonContext : JsonSerializerContext;

/// <summary>
/// Binds a homework body (each record's <c>BindAsync</c>): reads it with the app's JSON options and
/// never fails the binding itself. A body that is not JSON, not an object, or has a field of the
/// wrong type comes back empty with <see cref="HomeworkBody.ReadError"/> set, so the request filter
/// can first answer a bad token (401) and then say exactly what is wrong with the body (400).
/// </summary>
internal static class HomeworkBodyReader
{
    public static async ValueTask<T?> ReadAsync<T>(HttpContext context)
        where T : HomeworkBody, new()
    {
        var request = context.Request;
        if (request.ContentType is not { } type || !type.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            return new T { ReadError = Problems.NotJsonContentType };
        }

        var options = context.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var typeInfo = (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
        var (buffer, length) = await ReadAllAsync(request, context.RequestAborted);
        try
        {
            var json = buffer.AsSpan(0, length);
            try
            {
                return JsonSerializer.Deserialize(json, typeInfo) ?? new T { ReadError = Problems.NotAnObject };
            }
            catch (JsonException ex)
            {
                // A malformed document is "not valid JSON" wherever the first wrong value sits.
                return new T { ReadError = IsWellFormed(json) ? Sentence(ex) : Problems.NotJson };
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The whole body (Kestrel's request body limit bounds it), in a pooled buffer.</summary>
    private static async ValueTask<(byte[] Buffer, int Length)> ReadAllAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(request.ContentLength is > 0 and <= 1024 * 1024 ? (int)request.ContentLength.Value : 16 * 1024);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    return (buffer, length);
                }

                length += read;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private static bool IsWellFormed(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            while (reader.Read())
            {
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The sentence for a value the record cannot hold, named from the exception's JSON path.</summary>
    private static string Sentence(JsonException exception)
    {
        if (exception is BodyFieldException)
        {
            return exception.Message;
        }

        var path = exception.Path;
        if (path is null || !path.StartsWith("$.", StringComparison.Ordinal))
        {
            return Problems.NotAnObject;
        }

        var field = path[2..];
        var end = field.IndexOfAny(['.', '[']);
        var name = end < 0 ? field : field[..end];
        return name switch
        {
            "messages" when end < 0 => "messages must be an array of {role, content} objects.",
            "messages" => TurnSentence(field),
            "previousHints" => "previousHints must be an array of strings.",
            "metadata" => "metadata must be a JSON object of tags.",
            "stream" => "stream must be true or false.",
            "userId" or "gradeLevel" or "sessionId" or "problemId" => name + " must be a string or a number.",
            _ => name + " must be a string.",
        };
    }

    /// <summary>A turn of <c>messages</c> (path <c>messages[i]</c>, <c>messages[i].role</c>, <c>messages[i].content</c>).</summary>
    private static string TurnSentence(string field)
    {
        var close = field.IndexOf(']', StringComparison.Ordinal);
        var turn = close < 0 ? "messages" : field[..(close + 1)];
        return field[(close + 1)..] switch
        {
            ".role" => turn + ".role must be \"user\" or \"assistant\".",
            ".content" => turn + ".content must be a non-empty string.",
            _ => turn + " must be an object with role and content.",
        };
    }
}
