using Microsoft.Extensions.DependencyInjection;
using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI.Chat;
using OpenAI.Responses;
using TokenMeter.Testing;
using TokenMeter.Testing.FakeOpenAI;

#pragma warning disable OPENAI001

namespace TokenMeter.Tests.Metering;

public sealed class OpenAIMeteringPolicyTests
{
    private static readonly ChatMessage[] Hello = [new SystemChatMessage("You are a tutor."), new UserChatMessage("What is the derivative of x squared times sine of x?")];

    [Fact]
    public async Task Chat_Buffered_RecordsReportedUsage()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply
        {
            Model = "gpt-4o-mini-2024-07-18",
            ServiceTier = "default",
            Usage = new FakeUsage { PromptTokens = 120, CompletionTokens = 40, CachedTokens = 64, ReasoningTokens = 12, AudioPromptTokens = 3, AudioCompletionTokens = 5 },
        });

        ChatCompletion completion = await h.Metered().GetChatClient("gpt-4o-mini").CompleteChatAsync(Hello);

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(FakeReply.Ok.Text, completion.Content[0].Text);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(UsageOperation.Chat, record.Operation);
        Assert.Equal("gpt-4o-mini", record.RequestModel);
        Assert.Equal("gpt-4o-mini-2024-07-18", record.Model);
        Assert.Equal("default", record.ServiceTier);
        Assert.Equal(120, record.InputTokens);
        Assert.Equal(64, record.CachedInputTokens);
        Assert.Equal(40, record.OutputTokens);
        Assert.Equal(12, record.ReasoningTokens);
        Assert.Equal(3, record.AudioInputTokens);
        Assert.Equal(5, record.AudioOutputTokens);
        Assert.Equal(160, record.TotalTokens);
        Assert.Equal(200, record.HttpStatus);
        Assert.False(record.Streaming);
        Assert.True(record.DurationMs > 0);
        Assert.Equal(7, record.Id.Version);
        Assert.Equal((120m + 80m) / 1000m, record.CostUsd);
        Assert.Equal("test/flat", record.PriceId);
    }

    [Fact]
    public async Task Chat_SyncMethod_IsMeteredThroughProcess()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(FakeReply.WithUsage(11, 3));

        ChatCompletion completion = h.Metered().GetChatClient("gpt-4o").CompleteChat(Hello);

        Assert.NotNull(completion);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(11, record.InputTokens);
        Assert.Equal(3, record.OutputTokens);
    }

    [Fact]
    public async Task Chat_SyncStreaming_IsMetered()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(FakeReply.WithUsage(9, 4));

        var text = string.Concat(h.Metered().GetChatClient("gpt-4o").CompleteChatStreaming(Hello).SelectMany(u => u.ContentUpdate).Select(p => p.Text));

        Assert.Equal(FakeReply.Ok.Text, text);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(9, record.InputTokens);
        Assert.True(record.Streaming);
    }

    [Fact]
    public async Task Chat_Streaming_RecordsUsageFromLastChunk()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Usage = new FakeUsage { PromptTokens = 50, CompletionTokens = 25, CachedTokens = 10, ReasoningTokens = 5 }, ChunkDelay = TimeSpan.FromMilliseconds(1) });

        var text = "";
        await foreach (var update in h.Metered().GetChatClient("gpt-4o").CompleteChatStreamingAsync(Hello))
        {
            text += string.Concat(update.ContentUpdate.Select(p => p.Text));
        }

        Assert.Equal(FakeReply.Ok.Text, text);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.True(record.Streaming);
        Assert.Equal(50, record.InputTokens);
        Assert.Equal(10, record.CachedInputTokens);
        Assert.Equal(25, record.OutputTokens);
        Assert.Equal(5, record.ReasoningTokens);
        Assert.Equal(75, record.TotalTokens);
        Assert.Equal("gpt-4o", record.Model);
    }

    [Fact]
    public async Task Chat_ProtocolStreamingWithoutStreamOptions_AsksForUsage()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(FakeReply.WithUsage(33, 8));
        var body = BinaryContent.Create(BinaryData.FromString("""{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        var result = await h.Metered().GetChatClient("gpt-4o-mini").CompleteChatAsync(body, new RequestOptions { BufferResponse = false });
        using (var reader = new StreamReader(result.GetRawResponse().ContentStream!))
        {
            var raw = await reader.ReadToEndAsync();
            Assert.Contains("\"choices\":[],", raw);
            Assert.EndsWith("data: [DONE]\n\n", raw);
        }

        Assert.True(h.Server.Requests[0].Json!["stream_options"]!["include_usage"]!.GetValue<bool>());
        Assert.Equal("gpt-4o-mini", h.Server.Requests[0].Model);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(33, record.InputTokens);
        Assert.Equal(8, record.OutputTokens);
    }

    [Fact]
    public async Task Chat_ProtocolStreamingWithExplicitStreamOptions_IsNotChanged()
    {
        await using var h = await MeteringHarness.StartAsync();
        const string Json = """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}""";

        var result = await h.Metered().GetChatClient("gpt-4o-mini").CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(Json)), new RequestOptions { BufferResponse = false });
        await result.GetRawResponse().ContentStream!.CopyToAsync(Stream.Null);
        result.GetRawResponse().Dispose();

        Assert.Equal(Json, h.Server.Requests[0].Body);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Estimated, record.Status);
        Assert.True(record.InputTokens > 0);
    }

    [Fact]
    public async Task Responses_PlainAndStreaming_RecordUsage()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(FakeReply.WithUsage(70, 30, cachedTokens: 20, reasoningTokens: 15), FakeReply.WithUsage(80, 35, cachedTokens: 0, reasoningTokens: 6));
        var responses = h.Metered().GetResponsesClient();

        ResponseResult result = await responses.CreateResponseAsync("o4-mini", "Explain limits.");
        Assert.Equal(FakeReply.Ok.Text, result.GetOutputText());
        await foreach (var _ in await responses.CreateResponseStreamingAsync("o4-mini", "Explain limits."))
        {
        }

        var records = h.Observer.Records;
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(UsageOperation.Responses, r.Operation));
        Assert.Equal((70L, 20L, 30L, 15L, false), (records[0].InputTokens, records[0].CachedInputTokens, records[0].OutputTokens, records[0].ReasoningTokens, records[0].Streaming));
        Assert.Equal((80L, 0L, 35L, 6L, true), (records[1].InputTokens, records[1].CachedInputTokens, records[1].OutputTokens, records[1].ReasoningTokens, records[1].Streaming));
        Assert.All(records, r => Assert.Equal(UsageStatus.Ok, r.Status));
        Assert.All(records, r => Assert.Equal("o4-mini", r.Model));
    }

    [Fact]
    public async Task EmbeddingsImagesTranscriptions_RecordUsage()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(
            FakeReply.WithUsage(8, 0),
            FakeReply.WithUsage(20, 4160),
            new FakeReply { Usage = new FakeUsage { PromptTokens = 90, AudioPromptTokens = 80, CompletionTokens = 12 } },
            new FakeReply { Usage = new FakeUsage { DurationSeconds = 12.5 } });
        var client = h.Metered();

        await client.GetEmbeddingClient("text-embedding-3-small").GenerateEmbeddingAsync("hello");
        await client.GetImageClient("gpt-image-1").GenerateImageAsync("a cat");
        using (var audio = new MemoryStream([1, 2, 3, 4]))
        {
            await client.GetAudioClient("gpt-4o-transcribe").TranscribeAudioAsync(audio, "a.wav");
        }

        using (var audio = new MemoryStream([1, 2, 3, 4]))
        {
            await client.GetAudioClient("whisper-1").TranscribeAudioAsync(audio, "a.wav");
        }

        var r = h.Observer.Records;
        Assert.Equal(4, r.Count);
        Assert.Equal((UsageOperation.Embeddings, "text-embedding-3-small", 8L, 0L, 8L), (r[0].Operation, r[0].Model, r[0].InputTokens, r[0].OutputTokens, r[0].TotalTokens));
        Assert.Equal((UsageOperation.Images, "gpt-image-1", 20L, 4160L), (r[1].Operation, r[1].RequestModel, r[1].InputTokens, r[1].OutputTokens));
        Assert.Equal((UsageOperation.AudioTranscription, "gpt-4o-transcribe", 90L, 80L, 12L), (r[2].Operation, r[2].RequestModel, r[2].InputTokens, r[2].AudioInputTokens, r[2].OutputTokens));
        Assert.Equal((UsageOperation.AudioTranscription, "whisper-1", 0L), (r[3].Operation, r[3].RequestModel, r[3].TotalTokens));
        Assert.Equal("12.5", r[3].Tags!["audio_seconds"]);
        Assert.All(r, x => Assert.Equal(UsageStatus.Ok, x.Status));
    }

    [Fact]
    public async Task HttpError_IsRecordedAndExceptionUnchanged()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(FakeReply.Error(500), FakeReply.Error(500));

        var metered = await Assert.ThrowsAsync<ClientResultException>(() => h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));
        var unmetered = await Assert.ThrowsAsync<ClientResultException>(() => h.Unmetered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));

        Assert.Equal(unmetered.Message, metered.Message);
        Assert.Equal(500, metered.Status);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.HttpError, record.Status);
        Assert.Equal(500, record.HttpStatus);
        Assert.Equal(0, record.TotalTokens);
        Assert.Equal("gpt-4o", record.RequestModel);
    }

    [Fact]
    public async Task HttpErrorWithUsage_RecordsTheUsage()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.HttpError, StatusCode = 400, UsageInError = true, Usage = FakeUsage.Default });

        await Assert.ThrowsAsync<ClientResultException>(() => h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((UsageStatus.HttpError, 400, 12L), (record.Status, record.HttpStatus, record.InputTokens));
    }

    [Fact]
    public async Task RateLimitedThenSuccess_IsMeteredOnce()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(FakeReply.Error(429, TimeSpan.FromMilliseconds(5)), FakeReply.WithUsage(14, 6));

        ChatCompletion completion = await h.Metered(maxRetries: 2).GetChatClient("gpt-4o").CompleteChatAsync(Hello);

        Assert.NotNull(completion);
        Assert.Equal(2, h.Server.RequestCount);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((UsageStatus.Ok, 200, 14L, 6L), (record.Status, record.HttpStatus, record.InputTokens, record.OutputTokens));
    }

    [Fact]
    public async Task TransportFailure_IsRecordedAndExceptionUnchanged()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.DropConnection }, new FakeReply { Kind = FakeReplyKind.DropConnection });

        var metered = await Assert.ThrowsAnyAsync<Exception>(() => h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));
        var unmetered = await Assert.ThrowsAnyAsync<Exception>(() => h.Unmetered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));

        Assert.Equal(unmetered.GetType(), metered.GetType());
        Assert.Equal(unmetered.Message, metered.Message);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.TransportError, record.Status);
        Assert.Null(record.HttpStatus);
        Assert.Equal("gpt-4o", record.RequestModel);
    }

    [Fact]
    public async Task ConnectionRefused_IsRecordedAsTransportError()
    {
        await using var h = await MeteringHarness.StartAsync();
        var closed = new OpenAI.OpenAIClient(
            new ApiKeyCredential("k"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri("http://127.0.0.1:1/v1"), RetryPolicy = new ClientRetryPolicy(0) }.AddTokenMeter(h.Services));

        await Assert.ThrowsAnyAsync<Exception>(() => closed.GetChatClient("gpt-4o").CompleteChatAsync(Hello));

        Assert.Equal(UsageStatus.TransportError, Assert.Single(h.Observer.Records).Status);
    }

    [Fact]
    public async Task Cancellation_IsRecordedAsCancelled()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Delay = TimeSpan.FromSeconds(30) });
        using var cts = new CancellationTokenSource();
        var call = h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello, cancellationToken: cts.Token);
        await Eventually.TrueAsync(() => h.Server.RequestCount > 0);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.Equal(UsageStatus.Cancelled, Assert.Single(h.Observer.Records).Status);
    }

    [Fact]
    public async Task StreamAbandoned_IsRecordedAsCancelledWithEstimatedInput()
    {
        await using var h = await MeteringHarness.StartAsync();

        await foreach (var update in h.Metered().GetChatClient("gpt-4o").CompleteChatStreamingAsync(Hello))
        {
            break;
        }

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Cancelled, record.Status);
        Assert.True(record.Streaming);
        Assert.InRange(record.InputTokens, 15, 40);

        // The output counted is the text that reached the SDK before it was abandoned (it reads ahead of the loop).
        var readAhead = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt-4o").CountTokens(FakeReply.Ok.Text);
        Assert.InRange(record.OutputTokens, 0, readAhead);
        Assert.StartsWith("input", record.Tags!["tokenmeter.estimated"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamWithoutUsage_IsRecordedAsEstimated()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.MissingUsage });

        await foreach (var _ in h.Metered().GetChatClient("gpt-4o").CompleteChatStreamingAsync(Hello))
        {
        }

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Estimated, record.Status);
        Assert.InRange(record.InputTokens, 15, 40);
        Assert.Equal(Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt-4o").CountTokens(FakeReply.Ok.Text), record.OutputTokens);
        Assert.Equal("input,output", record.Tags!["tokenmeter.estimated"]);
    }

    [Fact]
    public async Task StreamWithoutUsage_NoEstimateWhenDisabled_IsUsageMissing()
    {
        await using var h = await MeteringHarness.StartAsync(options: o => o.EstimateMissingUsage = false);
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.MissingUsage });

        await foreach (var _ in h.Metered().GetChatClient("gpt-4o").CompleteChatStreamingAsync(Hello))
        {
        }

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((UsageStatus.UsageMissing, 0L), (record.Status, record.InputTokens));
    }

    [Fact]
    public async Task StreamCut_IsRecordedAsTransportErrorAndExceptionUnchanged()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.CutStream, CutAfterChunks = 3 }, new FakeReply { Kind = FakeReplyKind.CutStream, CutAfterChunks = 3 });

        async Task<Exception> Consume(OpenAI.OpenAIClient client) => await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var _ in client.GetChatClient("gpt-4o").CompleteChatStreamingAsync(Hello))
            {
            }
        });

        var metered = await Consume(h.Metered());
        var unmetered = await Consume(h.Unmetered());

        // Where the cut lands relative to the SDK's reads is a race, so even two unmetered runs can
        // surface it as an IOException or as the SDK's ClientResultException; metering must surface
        // one of the SDK's own failures, never an exception of its own.
        static bool IsSdkTransportFailure(Exception e) => e is IOException or ClientResultException or HttpRequestException;
        Assert.True(IsSdkTransportFailure(unmetered), unmetered.ToString());
        Assert.True(IsSdkTransportFailure(metered), metered.ToString());
        Assert.DoesNotContain("TokenMeter", metered.GetType().FullName, StringComparison.Ordinal);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.TransportError, record.Status);
        Assert.True(record.InputTokens > 0);
    }

    [Fact]
    public async Task MalformedJson_IsRecordedAndSdkErrorUnchanged()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.MalformedJson }, new FakeReply { Kind = FakeReplyKind.MalformedJson });

        var metered = await Assert.ThrowsAnyAsync<Exception>(() => h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));
        var unmetered = await Assert.ThrowsAnyAsync<Exception>(() => h.Unmetered().GetChatClient("gpt-4o").CompleteChatAsync(Hello));

        Assert.Equal(unmetered.GetType(), metered.GetType());
        Assert.Equal(UsageStatus.UsageMissing, Assert.Single(h.Observer.Records).Status);
    }

    [Fact]
    public async Task StreamedBytes_AreIdenticalMeteredAndUnmetered()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.DefaultReply = new FakeReply { Id = "same", Text = string.Join(' ', Enumerable.Range(0, 400).Select(i => $"word{i}")) };
        const string Json = """{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""";

        async Task<byte[]> Raw(OpenAI.OpenAIClient client)
        {
            var result = await client.GetChatClient("gpt-4o").CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(Json)), new RequestOptions { BufferResponse = false });
            using var response = result.GetRawResponse();
            using var copy = new MemoryStream();
            var buffer = new byte[7]; // small reads split lines across reads
            int read;
            while ((read = await response.ContentStream!.ReadAsync(buffer)) > 0)
            {
                copy.Write(buffer, 0, read);
            }

            return copy.ToArray();
        }

        var metered = await Raw(h.Metered());
        var unmetered = await Raw(h.Unmetered());

        Assert.Equal(unmetered, metered);
        Assert.Equal(Json, h.Server.Requests[0].Body);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((UsageStatus.Ok, 12L, 7L), (record.Status, record.InputTokens, record.OutputTokens));
    }

    [Fact]
    public async Task BufferedBody_IsIdenticalMeteredAndUnmetered()
    {
        await using var h = await MeteringHarness.StartAsync();
        const string Json = """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""";
        h.Server.DefaultReply = new FakeReply { Id = "same" };

        var metered = await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(Json)));
        var unmetered = await h.Unmetered().GetChatClient("gpt-4o").CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(Json)));

        Assert.Equal(unmetered.GetRawResponse().Content.ToArray(), metered.GetRawResponse().Content.ToArray());
        Assert.Equal(h.Server.Requests[1].Body, h.Server.Requests[0].Body);
    }

    [Fact]
    public async Task NonMeteredRoute_IsNotRecorded()
    {
        await using var h = await MeteringHarness.StartAsync();

        await Assert.ThrowsAsync<ClientResultException>(() => h.Metered().GetOpenAIModelClient().GetModelsAsync());

        Assert.Empty(h.Observer.Records);
    }

    [Fact]
    public async Task Disabled_PassesThroughUnmetered()
    {
        await using var h = await MeteringHarness.StartAsync(options: o => o.Enabled = false);

        await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello);

        Assert.Empty(h.Observer.Records);
        Assert.Equal(1, h.Server.RequestCount);
    }

    [Fact]
    public async Task ThrowingObserver_DoesNotReachTheCaller()
    {
        await using var h = await MeteringHarness.StartAsync(s => s.AddSingleton<TokenMeter.Metering.IUsageObserver>(new ThrowingObserver()));

        ChatCompletion completion = await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello);

        Assert.NotNull(completion);
        Assert.Single(h.Observer.Records);
    }

    [Fact]
    public async Task UnpricedModel_HasNullCost()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Model = "unpriced-model" });

        await h.Metered().GetChatClient("whatever").CompleteChatAsync(Hello);

        var record = Assert.Single(h.Observer.Records);
        Assert.Null(record.CostUsd);
        Assert.Equal("unpriced-model", record.Model);
    }

    private sealed class ThrowingObserver : TokenMeter.Metering.IUsageObserver
    {
        public void OnUsage(UsageRecord record) => throw new InvalidOperationException("observer bug");
    }
}
