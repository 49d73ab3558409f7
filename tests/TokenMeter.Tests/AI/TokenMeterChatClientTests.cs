using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using TokenMeter.Attribution;
using TokenMeter.Metering;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Tests.Metering;

namespace TokenMeter.Tests.AI;

public sealed class TokenMeterChatClientTests
{
    private static readonly ChatMessage[] Question = [new(ChatRole.User, "How many legs does a spider have?")];

    [Fact]
    public async Task NonSdkClient_IsMeteredFromReportedUsage()
    {
        await using var h = await MeteringHarness.StartAsync();
        using var client = new ChatClientBuilder(new ScriptedChatClient { Usage = new UsageDetails { InputTokenCount = 40, OutputTokenCount = 9, CachedInputTokenCount = 8, ReasoningTokenCount = 2, TotalTokenCount = 49 } })
            .UseTokenMeter()
            .Build(h.Services);

        ChatResponse response;
        using (UsageScope.Begin(new UsageContext { UserId = "s1", Endpoint = "/api/chat" }))
        {
            response = await client.GetResponseAsync(Question, new ChatOptions { ModelId = "llama-3" });
        }

        Assert.Equal("Eight.", response.Text);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(("s1", "/api/chat", UsageOperation.Chat, UsageStatus.Ok), (record.UserId, record.Endpoint, record.Operation, record.Status));
        Assert.Equal(("llama-3", "llama-3-0001"), (record.RequestModel, record.Model));
        Assert.Equal((40L, 8L, 9L, 2L, 49L), (record.InputTokens, record.CachedInputTokens, record.OutputTokens, record.ReasoningTokens, record.TotalTokens));
        Assert.False(record.Streaming);
    }

    [Fact]
    public async Task NonSdkClientWithoutUsage_IsEstimated()
    {
        await using var h = await MeteringHarness.StartAsync();
        using var client = new ChatClientBuilder(new ScriptedChatClient()).UseTokenMeter().Build(h.Services);

        await client.GetResponseAsync(Question);

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Estimated, record.Status);
        Assert.InRange(record.InputTokens, 10, 25);
        Assert.InRange(record.OutputTokens, 1, 5);
        Assert.Equal("scripted-default", record.RequestModel);
        Assert.Equal("input,output", record.Tags!["tokenmeter.estimated"]);
    }

    [Fact]
    public async Task NonSdkStreaming_IsMeteredOnceFromUsageContent()
    {
        await using var h = await MeteringHarness.StartAsync();
        using var client = new ChatClientBuilder(new ScriptedChatClient { Usage = new UsageDetails { InputTokenCount = 30, OutputTokenCount = 3 } }).UseTokenMeter().Build(h.Services);

        var text = "";
        await foreach (var update in client.GetStreamingResponseAsync(Question))
        {
            text += update.Text;
        }

        Assert.Equal("Eight.", text);
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((UsageStatus.Ok, 30L, 3L, true), (record.Status, record.InputTokens, record.OutputTokens, record.Streaming));
    }

    [Fact]
    public async Task NonSdkStreamingAbandoned_IsCancelled()
    {
        await using var h = await MeteringHarness.StartAsync();
        using var client = new ChatClientBuilder(new ScriptedChatClient { Usage = new UsageDetails { InputTokenCount = 30, OutputTokenCount = 3 } }).UseTokenMeter().Build(h.Services);

        await foreach (var _ in client.GetStreamingResponseAsync(Question, new ChatOptions { ModelId = "gpt-4o" }))
        {
            break;
        }

        // The caller received "Eig" before it stopped: that is the output, in gpt-4o's tokenizer (o200k).
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Cancelled, record.Status);
        Assert.True(record.InputTokens > 0);
        Assert.Equal(TokenEstimator.For("gpt-4o").CountTokens("Eig"), record.OutputTokens);
        Assert.Equal(record.InputTokens + record.OutputTokens, record.TotalTokens);
        Assert.Equal("input,output", record.Tags!["tokenmeter.estimated"]);
    }

    [Fact]
    public async Task NonSdkStreamCut_OutputIsTheDeliveredTextInTheModelsTokenizer()
    {
        await using var h = await MeteringHarness.StartAsync();
        using var client = new ChatClientBuilder(new ScriptedChatClient { StreamFailure = new HttpRequestException("cut") }).UseTokenMeter().Build(h.Services);

        var delivered = "";
        await Assert.ThrowsAsync<HttpRequestException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync(Question, new ChatOptions { ModelId = "gpt-4" }))
            {
                delivered += update.Text;
            }
        });

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal("Eight.", delivered);
        Assert.Equal(UsageStatus.TransportError, record.Status);
        Assert.Equal(TokenEstimator.For("gpt-4").CountTokens(delivered), record.OutputTokens);
        Assert.Equal(TokenEstimator.For("gpt-4").CountTokens(Question[0].Text) + 6, record.InputTokens);
    }

    [Fact]
    public async Task NonSdkClientFailure_IsRecordedAndRethrown()
    {
        await using var h = await MeteringHarness.StartAsync();
        using var client = new ChatClientBuilder(new ScriptedChatClient { Failure = new HttpRequestException("down") }).UseTokenMeter().Build(h.Services);

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetResponseAsync(Question));

        Assert.Equal("down", error.Message);
        Assert.Equal(UsageStatus.TransportError, Assert.Single(h.Observer.Records).Status);
    }

    [Fact]
    public async Task SdkBackedMeteredClient_IsNotCountedTwice()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.DefaultReply = FakeReply.WithUsage(21, 4);
        using var client = new ChatClientBuilder(h.Metered().GetChatClient("gpt-4o-mini").AsIChatClient()).UseTokenMeter().Build(h.Services);

        var response = await client.GetResponseAsync(Question);
        await foreach (var _ in client.GetStreamingResponseAsync(Question))
        {
        }

        Assert.Equal(FakeReply.Ok.Text, response.Text);
        var records = h.Observer.Records;
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal((UsageStatus.Ok, 21L, 4L), (r.Status, r.InputTokens, r.OutputTokens)));
        Assert.All(records, r => Assert.Equal(200, r.HttpStatus)); // recorded by the pipeline policy, not the middleware
    }

    [Fact]
    public async Task SdkBackedUnmeteredClient_IsMeteredByTheMiddleware()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.DefaultReply = FakeReply.WithUsage(21, 4);
        using var client = new ChatClientBuilder(h.Unmetered().GetChatClient("gpt-4o-mini").AsIChatClient()).UseTokenMeter().Build(h.Services);

        await client.GetResponseAsync(Question);

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((UsageStatus.Ok, 21L, 4L, "gpt-4o-mini"), (record.Status, record.InputTokens, record.OutputTokens, record.Model));
        Assert.Null(record.HttpStatus);
    }

    private sealed class ScriptedChatClient : IChatClient
    {
        public UsageDetails? Usage { get; init; }

        public Exception? Failure { get; init; }

        /// <summary>Thrown after the text is streamed, in place of the usage (a stream cut before its end).</summary>
        public Exception? StreamFailure { get; init; }

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            if (Failure is not null)
            {
                throw Failure;
            }

            return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, "Eight.")) { ModelId = options?.ModelId is { } m ? m + "-0001" : null, Usage = Usage });
        }

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            yield return new ChatResponseUpdate(ChatRole.Assistant, "Eig");
            yield return new ChatResponseUpdate(ChatRole.Assistant, "ht.");
            if (StreamFailure is not null)
            {
                throw StreamFailure;
            }

            if (Usage is not null)
            {
                yield return new ChatResponseUpdate { Contents = [new UsageContent(Usage)] };
            }
        }

        public object? GetService(Type serviceType, object? serviceKey = null) =>
            serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("scripted", null, "scripted-default") : null;

        public void Dispose()
        {
        }
    }
}
