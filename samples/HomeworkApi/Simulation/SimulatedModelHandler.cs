using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace HomeworkApi.Simulation;

/// <summary>
/// An OpenAI-compatible chat completions endpoint served in-process: the primary handler of the
/// metered client's <see cref="HttpClient"/> when no API key or endpoint is configured. It answers
/// deterministically, counts tokens with the o200k tokenizer, reports cached tokens when a prompt
/// repeats a prefix it has seen, and streams server-sent events exactly as OpenAI does (with the
/// final usage chunk when <c>stream_options.include_usage</c> asks), so the SDK, the metering policy
/// and the store run as they do in production.
/// </summary>
internal sealed class SimulatedModelHandler(SimulatedModelState state, TimeProvider timeProvider, TimeSpan chunkDelay) : HttpMessageHandler
{
    // OpenAI caches prompt prefixes of 1,024 tokens and more in 128-token steps; the simulation uses
    // smaller steps so that the sample's own prompts show caching.
    internal const int CacheBlockTokens = 64;
    internal const int CacheMinimumTokens = 128;
    private const int MaxRememberedPrefixes = 50_000;

    // Tokens a high-detail 512x512-ish image costs gpt-4o (85 base + 170 per tile, 4 tiles); low detail costs 85.
    internal const int ImageTokens = 765;
    internal const int LowDetailImageTokens = 85;

    private static readonly Lazy<Tokenizer> LazyTokenizer = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));

    public static Tokenizer Tokenizer => LazyTokenizer.Value;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri?.AbsolutePath ?? "/";
        if (request.Method != HttpMethod.Post || !path.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            return Error(HttpStatusCode.NotFound, $"The simulated model serves only POST /v1/chat/completions, not {request.Method} {path}.", "invalid_request_error");
        }

        JsonDocument document;
        try
        {
            var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken);
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            return Error(HttpStatusCode.BadRequest, "The request body is not valid JSON.", "invalid_request_error");
        }

        using (document)
        {
            var root = document.RootElement;
            if (!root.TryGetProperty("model", out var modelElement) || modelElement.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("messages", out var messagesElement) || messagesElement.ValueKind != JsonValueKind.Array)
            {
                return Error(HttpStatusCode.BadRequest, "'model' and 'messages' are required.", "invalid_request_error");
            }

            var model = modelElement.GetString()!;
            var messages = ReadMessages(messagesElement);
            string? schemaName = null;
            string? schemaText = null;
            if (root.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object
                && format.TryGetProperty("json_schema", out var jsonSchema) && jsonSchema.ValueKind == JsonValueKind.Object)
            {
                schemaName = jsonSchema.TryGetProperty("name", out var name) ? name.GetString() : null;
                schemaText = jsonSchema.TryGetProperty("schema", out var schema) ? schema.GetRawText() : null;
            }

            var stream = root.TryGetProperty("stream", out var streamElement) && streamElement.ValueKind == JsonValueKind.True;
            var includeUsage = root.TryGetProperty("stream_options", out var streamOptions) && streamOptions.ValueKind == JsonValueKind.Object
                && streamOptions.TryGetProperty("include_usage", out var include) && include.ValueKind == JsonValueKind.True;

            var (promptTokens, cachedTokens) = CountPrompt(messages, schemaText);
            var content = SimulatedReplies.Create(schemaName, messages);
            var completionTokens = Tokenizer.CountTokens(content);
            var usage = new Usage(promptTokens, cachedTokens, completionTokens);
            var id = "chatcmpl-sim" + state.NextId().ToString(System.Globalization.CultureInfo.InvariantCulture);
            var created = timeProvider.GetUtcNow().ToUnixTimeSeconds();

            if (!stream)
            {
                var json = Json(w =>
                {
                    w.WriteString("id", id);
                    w.WriteString("object", "chat.completion");
                    w.WriteNumber("created", created);
                    w.WriteString("model", model);
                    w.WriteStartArray("choices");
                    w.WriteStartObject();
                    w.WriteNumber("index", 0);
                    w.WriteStartObject("message");
                    w.WriteString("role", "assistant");
                    w.WriteString("content", content);
                    w.WriteNull("refusal");
                    w.WriteStartArray("annotations");
                    w.WriteEndArray();
                    w.WriteEndObject();
                    w.WriteNull("logprobs");
                    w.WriteString("finish_reason", "stop");
                    w.WriteEndObject();
                    w.WriteEndArray();
                    WriteUsage(w, usage);
                    w.WriteString("service_tier", "default");
                    w.WriteString("system_fingerprint", "fp_simulated");
                });
                var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(json), RequestMessage = request };
                response.Content.Headers.ContentType = new("application/json");
                return response;
            }

            var pipe = new Pipe();
            _ = WriteStreamAsync(pipe.Writer, id, created, model, content, includeUsage ? usage : null, cancellationToken);
            var streamed = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(pipe.Reader.AsStream()), RequestMessage = request };
            streamed.Content.Headers.ContentType = new("text/event-stream") { CharSet = "utf-8" };
            streamed.Headers.CacheControl = new() { NoCache = true };
            return streamed;
        }
    }

    /// <summary>Prompt tokens the way OpenAI counts chat messages, and how many of them repeat a prefix seen before.</summary>
    internal (int Prompt, int Cached) CountPrompt(IReadOnlyList<SimulatedMessage> messages, string? schemaText)
    {
        var rendered = new StringBuilder();
        var images = 0;
        foreach (var message in messages)
        {
            rendered.Append("<|im_start|>").Append(message.Role).Append('\n').Append(message.Text);
            foreach (var image in message.Images)
            {
                // The image's identity takes part in the prefix, so another image breaks the cache.
                rendered.Append("<image ").Append(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(image.Url)), 0, 8)).Append('>');
                images += image.LowDetail ? LowDetailImageTokens : ImageTokens;
            }

            rendered.Append("<|im_end|>\n");
        }

        if (schemaText is not null)
        {
            rendered.Append(schemaText);
        }

        var ids = Tokenizer.EncodeToIds(rendered.ToString());
        var prompt = ids.Count + images + 3;

        var cached = 0;
        var span = MemoryMarshal.AsBytes(CollectionsMarshal.AsSpan(ids as List<int> ?? [.. ids]));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> digest = stackalloc byte[32];
        var hashed = 0;
        for (var length = CacheMinimumTokens; length <= ids.Count; length += CacheBlockTokens)
        {
            hash.AppendData(span[(hashed * sizeof(int))..(length * sizeof(int))]);
            hashed = length;
            hash.GetCurrentHash(digest);
            var key = BitConverter.ToUInt64(digest);
            if (state.Prefixes.ContainsKey(key))
            {
                cached = length;
            }
            else
            {
                if (state.Prefixes.Count > MaxRememberedPrefixes)
                {
                    state.Prefixes.Clear();
                }

                state.Prefixes.TryAdd(key, 0);
            }
        }

        return (prompt, Math.Min(cached, prompt));
    }

    private async Task WriteStreamAsync(PipeWriter writer, string id, long created, string model, string content, Usage? usage, CancellationToken cancellationToken)
    {
        try
        {
            await WriteEventAsync(writer, Chunk(id, created, model, usage is not null, w =>
            {
                w.WriteString("role", "assistant");
                w.WriteString("content", string.Empty);
                w.WriteNull("refusal");
            }, finish: null), cancellationToken);

            foreach (var piece in Pieces(content))
            {
                if (chunkDelay > TimeSpan.Zero)
                {
                    await Task.Delay(chunkDelay, timeProvider, cancellationToken);
                }

                if (await WriteEventAsync(writer, Chunk(id, created, model, usage is not null, w => w.WriteString("content", piece), finish: null), cancellationToken))
                {
                    return;
                }
            }

            await WriteEventAsync(writer, Chunk(id, created, model, usage is not null, _ => { }, finish: "stop"), cancellationToken);
            if (usage is not null)
            {
                await WriteEventAsync(writer, Json(w =>
                {
                    WriteChunkHeader(w, id, created, model);
                    w.WriteStartArray("choices");
                    w.WriteEndArray();
                    WriteUsage(w, usage);
                }), cancellationToken);
            }

            await writer.WriteAsync("data: [DONE]\n\n"u8.ToArray(), cancellationToken);
            await writer.CompleteAsync();
        }
        catch (Exception ex)
        {
            await writer.CompleteAsync(ex);
        }
    }

    /// <summary>Writes one <c>data:</c> event; true when the reader has gone away.</summary>
    private static async ValueTask<bool> WriteEventAsync(PipeWriter writer, byte[] json, CancellationToken cancellationToken)
    {
        writer.Write("data: "u8);
        writer.Write(json);
        writer.Write("\n\n"u8);
        var result = await writer.FlushAsync(cancellationToken);
        return result.IsCompleted;
    }

    private static IEnumerable<string> Pieces(string content)
    {
        var start = 0;
        for (var i = 1; i <= content.Length; i++)
        {
            if (i == content.Length || (content[i] == ' ' && i - start >= 3))
            {
                yield return content[start..i];
                start = i;
            }
        }
    }

    /// <summary>The fields every streamed chunk starts with.</summary>
    private static void WriteChunkHeader(Utf8JsonWriter w, string id, long created, string model)
    {
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteString("service_tier", "default");
        w.WriteString("system_fingerprint", "fp_simulated");
    }

    private static byte[] Chunk(string id, long created, string model, bool includeUsage, Action<Utf8JsonWriter> delta, string? finish) => Json(w =>
    {
        WriteChunkHeader(w, id, created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        delta(w);
        w.WriteEndObject();
        w.WriteNull("logprobs");
        if (finish is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finish);
        }

        w.WriteEndObject();
        w.WriteEndArray();
        if (includeUsage)
        {
            w.WriteNull("usage");
        }
    });

    private static void WriteUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.Prompt);
        w.WriteNumber("completion_tokens", usage.Completion);
        w.WriteNumber("total_tokens", usage.Prompt + usage.Completion);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", usage.Cached);
        w.WriteNumber("audio_tokens", 0);
        w.WriteEndObject();
        w.WriteStartObject("completion_tokens_details");
        w.WriteNumber("reasoning_tokens", 0);
        w.WriteNumber("audio_tokens", 0);
        w.WriteNumber("accepted_prediction_tokens", 0);
        w.WriteNumber("rejected_prediction_tokens", 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static List<SimulatedMessage> ReadMessages(JsonElement messages)
    {
        var result = new List<SimulatedMessage>();
        foreach (var message in messages.EnumerateArray())
        {
            var role = message.TryGetProperty("role", out var r) ? r.GetString() ?? "user" : "user";
            var text = new StringBuilder();
            var images = new List<SimulatedImage>();
            if (message.TryGetProperty("content", out var content))
            {
                if (content.ValueKind == JsonValueKind.String)
                {
                    text.Append(content.GetString());
                }
                else if (content.ValueKind == JsonValueKind.Array)
                {
                    foreach (var part in content.EnumerateArray())
                    {
                        var type = part.TryGetProperty("type", out var t) ? t.GetString() : null;
                        if (type == "text" && part.TryGetProperty("text", out var partText))
                        {
                            text.Append(partText.GetString());
                        }
                        else if (type == "image_url" && part.TryGetProperty("image_url", out var imageUrl) && imageUrl.TryGetProperty("url", out var url))
                        {
                            var low = imageUrl.TryGetProperty("detail", out var detail) && detail.GetString() == "low";
                            images.Add(new SimulatedImage(url.GetString() ?? string.Empty, low));
                        }
                    }
                }
            }

            result.Add(new SimulatedMessage(role, text.ToString(), images));
        }

        return result;
    }

    private static HttpResponseMessage Error(HttpStatusCode status, string message, string type)
    {
        var json = Json(w =>
        {
            w.WriteStartObject("error");
            w.WriteString("message", message);
            w.WriteString("type", type);
            w.WriteNull("param");
            w.WriteNull("code");
            w.WriteEndObject();
        });
        var response = new HttpResponseMessage(status) { Content = new ByteArrayContent(json) };
        response.Content.Headers.ContentType = new("application/json");
        return response;
    }

    private static byte[] Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private sealed record Usage(int Prompt, int Cached, int Completion);
}

/// <summary>One chat message as the simulated model sees it.</summary>
internal sealed record SimulatedMessage(string Role, string Text, IReadOnlyList<SimulatedImage> Images);

/// <summary>An image part of a message.</summary>
internal sealed record SimulatedImage(string Url, bool LowDetail);

/// <summary>What the simulated model remembers for the app's lifetime: the prompt prefixes it has seen (its "cache") and a reply counter.</summary>
internal sealed class SimulatedModelState
{
    private long _sequence;

    public ConcurrentDictionary<ulong, byte> Prefixes { get; } = new();

    public long NextId() => Interlocked.Increment(ref _sequence);
}
