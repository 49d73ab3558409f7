using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenMeter.Testing.FakeOpenAI;

/// <summary>The exact JSON and server-sent-event payloads OpenAI sends.</summary>
internal static class FakeWire
{
    private const long Created = 1_732_500_000;

    public static byte[] ChatCompletion(FakeReply reply, string model, string id) => Json(w =>
    {
        w.WriteString("id", $"chatcmpl-fake{id}");
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", Created);
        w.WriteString("model", model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", reply.Text);
        w.WriteNull("refusal");
        w.WriteStartArray("annotations");
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", "stop");
        w.WriteEndObject();
        w.WriteEndArray();
        if (reply.Kind != FakeReplyKind.MissingUsage)
        {
            WriteChatUsage(w, reply.Usage);
        }

        WriteTier(w, reply);
        w.WriteString("system_fingerprint", "fp_fake");
    });

    public static IEnumerable<byte[]> ChatChunks(FakeReply reply, string model, string id, bool includeUsage)
    {
        var words = Words(reply.Text);
        yield return Sse(ChatChunk(reply, model, id, includeUsage, w =>
        {
            w.WriteString("role", "assistant");
            w.WriteString("content", string.Empty);
            w.WriteNull("refusal");
        }, finish: null));
        foreach (var word in words)
        {
            yield return Sse(ChatChunk(reply, model, id, includeUsage, w => w.WriteString("content", word), finish: null));
        }

        yield return Sse(ChatChunk(reply, model, id, includeUsage, _ => { }, finish: "stop"));
        if (includeUsage && reply.Kind != FakeReplyKind.MissingUsage)
        {
            yield return Sse(Json(w =>
            {
                w.WriteString("id", $"chatcmpl-fake{id}");
                w.WriteString("object", "chat.completion.chunk");
                w.WriteNumber("created", Created);
                w.WriteString("model", model);
                WriteTier(w, reply);
                w.WriteString("system_fingerprint", "fp_fake");
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteChatUsage(w, reply.Usage);
            }));
        }

        yield return "data: [DONE]\n\n"u8.ToArray();
    }

    public static byte[] Response(FakeReply reply, string model, string id, string status, bool includeUsage) => Json(w => WriteResponseBody(w, reply, model, id, status, includeUsage));

    public static IEnumerable<byte[]> ResponseEvents(FakeReply reply, string model, string id)
    {
        var seq = 0;
        yield return Event("response.created", Json(w =>
        {
            w.WriteString("type", "response.created");
            w.WriteNumber("sequence_number", seq++);
            w.WriteStartObject("response");
            WriteResponseBody(w, reply, model, id, "in_progress", includeUsage: false, includeOutput: false);
            w.WriteEndObject();
        }));
        yield return Event("response.output_item.added", Json(w =>
        {
            w.WriteString("type", "response.output_item.added");
            w.WriteNumber("sequence_number", seq++);
            w.WriteNumber("output_index", 0);
            w.WriteStartObject("item");
            w.WriteString("id", $"msg_fake{id}");
            w.WriteString("type", "message");
            w.WriteString("status", "in_progress");
            w.WriteString("role", "assistant");
            w.WriteStartArray("content");
            w.WriteEndArray();
            w.WriteEndObject();
        }));
        foreach (var word in Words(reply.Text))
        {
            yield return Event("response.output_text.delta", Json(w =>
            {
                w.WriteString("type", "response.output_text.delta");
                w.WriteNumber("sequence_number", seq++);
                w.WriteString("item_id", $"msg_fake{id}");
                w.WriteNumber("output_index", 0);
                w.WriteNumber("content_index", 0);
                w.WriteString("delta", word);
            }));
        }

        yield return Event("response.output_text.done", Json(w =>
        {
            w.WriteString("type", "response.output_text.done");
            w.WriteNumber("sequence_number", seq++);
            w.WriteString("item_id", $"msg_fake{id}");
            w.WriteNumber("output_index", 0);
            w.WriteNumber("content_index", 0);
            w.WriteString("text", reply.Text);
        }));
        var withUsage = reply.Kind != FakeReplyKind.MissingUsage;
        yield return Event("response.completed", Json(w =>
        {
            w.WriteString("type", "response.completed");
            w.WriteNumber("sequence_number", seq++);
            w.WriteStartObject("response");
            WriteResponseBody(w, reply, model, id, "completed", withUsage);
            w.WriteEndObject();
        }));
    }

    public static byte[] Embeddings(FakeReply reply, string model, JsonNode? request)
    {
        var inputs = request?["input"] is JsonArray array ? Math.Max(1, array.Count) : 1;
        var base64 = request?["encoding_format"]?.GetValue<string>() == "base64";
        var dimensions = request?["dimensions"]?.GetValue<int>() ?? 8;
        return Json(w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (var i = 0; i < inputs; i++)
            {
                var vector = new float[dimensions];
                for (var d = 0; d < dimensions; d++)
                {
                    vector[d] = (i + 1) * 0.01f + d * 0.001f;
                }

                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (base64)
                {
                    w.WriteString("embedding", Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan())));
                }
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (var v in vector)
                    {
                        w.WriteNumberValue(v);
                    }

                    w.WriteEndArray();
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteString("model", model);
            if (reply.Kind != FakeReplyKind.MissingUsage)
            {
                w.WriteStartObject("usage");
                w.WriteNumber("prompt_tokens", reply.Usage.PromptTokens);
                w.WriteNumber("total_tokens", reply.Usage.PromptTokens);
                w.WriteEndObject();
            }
        });
    }

    // gpt-image-1 replies carry token usage; DALL·E replies carry none (billed per image).
    public static byte[] Images(FakeReply reply, string model, int count) => Json(w =>
    {
        w.WriteNumber("created", Created);
        w.WriteStartArray("data");
        for (var i = 0; i < count; i++)
        {
            w.WriteStartObject();
            w.WriteString("b64_json", Convert.ToBase64String("fake-png"u8));
            if (model.StartsWith("dall-e-3", StringComparison.Ordinal))
            {
                w.WriteString("revised_prompt", "A fake picture.");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        if (reply.Kind != FakeReplyKind.MissingUsage && !model.StartsWith("dall-e", StringComparison.Ordinal))
        {
            w.WriteStartObject("usage");
            w.WriteNumber("input_tokens", reply.Usage.PromptTokens);
            w.WriteNumber("output_tokens", reply.Usage.CompletionTokens);
            w.WriteNumber("total_tokens", reply.Usage.TotalTokens);
            w.WriteStartObject("input_tokens_details");
            w.WriteNumber("text_tokens", reply.Usage.PromptTokens - reply.Usage.ImageInputTokens);
            w.WriteNumber("image_tokens", reply.Usage.ImageInputTokens);
            w.WriteEndObject();
            w.WriteEndObject();
        }
    });

    // One line of a Batch API output file: {"id","custom_id","response":{"status_code","request_id","body"},"error"}.
    public static string BatchOutputLine(string customId, string requestId, FakeReply reply, string model)
    {
        var body = ChatCompletion(reply with { ServiceTier = "default" }, model, requestId);
        return Encoding.UTF8.GetString(Json(w =>
        {
            w.WriteString("id", requestId);
            w.WriteString("custom_id", customId);
            w.WriteStartObject("response");
            w.WriteNumber("status_code", 200);
            w.WriteString("request_id", "req_" + requestId);
            w.WritePropertyName("body");
            w.WriteRawValue(body);
            w.WriteEndObject();
            w.WriteNull("error");
        }));
    }

    public static byte[] Moderation(string model) => Json(w =>
    {
        w.WriteString("id", "modr-fake");
        w.WriteString("model", model);
        w.WriteStartArray("results");
        w.WriteStartObject();
        w.WriteBoolean("flagged", false);
        w.WriteStartObject("categories");
        w.WriteBoolean("harassment", false);
        w.WriteBoolean("violence", false);
        w.WriteEndObject();
        w.WriteStartObject("category_scores");
        w.WriteNumber("harassment", 0.0001);
        w.WriteNumber("violence", 0.0002);
        w.WriteEndObject();
        w.WriteStartObject("category_applied_input_types");
        w.WriteStartArray("harassment");
        w.WriteStringValue("text");
        w.WriteEndArray();
        w.WriteStartArray("violence");
        w.WriteStringValue("text");
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndArray();
    });

    public static byte[] Transcription(FakeReply reply) => Json(w =>
    {
        w.WriteString("text", reply.Text);
        if (reply.Kind == FakeReplyKind.MissingUsage)
        {
            return;
        }

        w.WriteStartObject("usage");
        if (reply.Usage.DurationSeconds is { } seconds)
        {
            w.WriteString("type", "duration");
            w.WriteNumber("seconds", seconds);
        }
        else
        {
            w.WriteString("type", "tokens");
            w.WriteNumber("input_tokens", reply.Usage.PromptTokens);
            w.WriteStartObject("input_token_details");
            w.WriteNumber("text_tokens", reply.Usage.PromptTokens - reply.Usage.AudioPromptTokens);
            w.WriteNumber("audio_tokens", reply.Usage.AudioPromptTokens);
            w.WriteEndObject();
            w.WriteNumber("output_tokens", reply.Usage.CompletionTokens);
            w.WriteNumber("total_tokens", reply.Usage.TotalTokens);
        }

        w.WriteEndObject();
    });

    public static byte[] Error(FakeReply reply, FakeRequest request) => Json(w =>
    {
        w.WriteStartObject("error");
        w.WriteString("message", $"Fake error {reply.StatusCode} for {request.Path}.");
        w.WriteString("type", reply.StatusCode == 429 ? "rate_limit_exceeded" : reply.StatusCode >= 500 ? "server_error" : "invalid_request_error");
        w.WriteNull("param");
        w.WriteString("code", reply.StatusCode == 429 ? "rate_limit_exceeded" : null);
        w.WriteEndObject();
        if (reply.UsageInError)
        {
            WriteChatUsage(w, reply.Usage);
        }
    });

    private static void WriteResponseBody(Utf8JsonWriter w, FakeReply reply, string model, string id, string status, bool includeUsage, bool includeOutput = true)
    {
        w.WriteString("id", $"resp_fake{id}");
        w.WriteString("object", "response");
        w.WriteNumber("created_at", Created);
        w.WriteString("status", status);
        w.WriteNull("error");
        w.WriteNull("incomplete_details");
        w.WriteString("model", model);
        w.WriteStartArray("output");
        if (includeOutput)
        {
            w.WriteStartObject();
            w.WriteString("type", "message");
            w.WriteString("id", $"msg_fake{id}");
            w.WriteString("status", "completed");
            w.WriteString("role", "assistant");
            w.WriteStartArray("content");
            w.WriteStartObject();
            w.WriteString("type", "output_text");
            w.WriteString("text", reply.Text);
            w.WriteStartArray("annotations");
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteBoolean("parallel_tool_calls", true);
        w.WriteString("tool_choice", "auto");
        w.WriteStartArray("tools");
        w.WriteEndArray();
        WriteTier(w, reply);
        if (includeUsage)
        {
            var u = reply.Usage;
            w.WriteStartObject("usage");
            w.WriteNumber("input_tokens", u.PromptTokens);
            w.WriteStartObject("input_tokens_details");
            w.WriteNumber("cached_tokens", u.CachedTokens);
            if (u.CacheWriteTokens != 0)
            {
                w.WriteNumber("cache_write_tokens", u.CacheWriteTokens);
            }

            w.WriteEndObject();
            w.WriteNumber("output_tokens", u.CompletionTokens);
            w.WriteStartObject("output_tokens_details");
            w.WriteNumber("reasoning_tokens", u.ReasoningTokens);
            w.WriteEndObject();
            w.WriteNumber("total_tokens", u.TotalTokens);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("usage");
        }
    }

    private static byte[] ChatChunk(FakeReply reply, string model, string id, bool includeUsage, Action<Utf8JsonWriter> delta, string? finish) => Json(w =>
    {
        w.WriteString("id", $"chatcmpl-fake{id}");
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", Created);
        w.WriteString("model", model);
        WriteTier(w, reply);
        w.WriteString("system_fingerprint", "fp_fake");
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

    private static void WriteChatUsage(Utf8JsonWriter w, FakeUsage u)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", u.PromptTokens);
        w.WriteNumber("completion_tokens", u.CompletionTokens);
        w.WriteNumber("total_tokens", u.TotalTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", u.CachedTokens);
        if (u.CacheWriteTokens != 0)
        {
            w.WriteNumber("cache_write_tokens", u.CacheWriteTokens);
        }

        w.WriteNumber("audio_tokens", u.AudioPromptTokens);
        w.WriteEndObject();
        w.WriteStartObject("completion_tokens_details");
        w.WriteNumber("reasoning_tokens", u.ReasoningTokens);
        w.WriteNumber("audio_tokens", u.AudioCompletionTokens);
        w.WriteNumber("accepted_prediction_tokens", 0);
        w.WriteNumber("rejected_prediction_tokens", 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteTier(Utf8JsonWriter w, FakeReply reply)
    {
        if (reply.ServiceTier is { } tier)
        {
            w.WriteString("service_tier", tier);
        }
    }

    private static List<string> Words(string text)
    {
        var words = new List<string>();
        var parts = text.Split(' ');
        for (var i = 0; i < parts.Length; i++)
        {
            words.Add(i == 0 ? parts[i] : " " + parts[i]);
        }

        return words;
    }

    private static byte[] Sse(byte[] json)
    {
        var bytes = new byte[json.Length + 8];
        "data: "u8.CopyTo(bytes);
        json.CopyTo(bytes, 6);
        bytes[^2] = (byte)'\n';
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    private static byte[] Event(string name, byte[] json) => [.. Encoding.UTF8.GetBytes("event: " + name + "\n"), .. Sse(json)];

    private static byte[] Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
