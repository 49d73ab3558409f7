using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Responses;
using TokenMeter.Testing.FakeOpenAI;

#pragma warning disable OPENAI001

namespace TokenMeter.Tests.Metering;

public sealed class FakeOpenAIServerTests
{
    private static OpenAIClient Client(FakeOpenAIServer server, int maxRetries = 0) =>
        new(new ApiKeyCredential("sk-test"), new OpenAIClientOptions { Endpoint = server.Endpoint, RetryPolicy = new ClientRetryPolicy(maxRetries) });

    [Fact]
    public async Task Chat_PlainAndStreaming_SdkParsesTextAndUsage()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        server.DefaultReply = FakeReply.WithUsage(30, 9, cachedTokens: 10, reasoningTokens: 4);
        var chat = Client(server).GetChatClient("gpt-4o-mini");

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("hi")]);
        Assert.Equal(FakeReply.Ok.Text, completion.Content[0].Text);
        Assert.Equal(30, completion.Usage.InputTokenCount);
        Assert.Equal(10, completion.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(4, completion.Usage.OutputTokenDetails.ReasoningTokenCount);

        var text = "";
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("hi")]))
        {
            text += string.Concat(update.ContentUpdate.Select(p => p.Text));
            usage ??= update.Usage;
        }

        Assert.Equal(FakeReply.Ok.Text, text);
        Assert.Equal(39, usage!.TotalTokenCount);
        Assert.Equal(2, server.RequestCount);
        Assert.True(server.Requests[1].Json!["stream_options"]!["include_usage"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Responses_PlainAndStreaming_SdkParsesUsage()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        server.DefaultReply = FakeReply.WithUsage(21, 8, cachedTokens: 5, reasoningTokens: 3);
        var responses = Client(server).GetResponsesClient();

        ResponseResult result = await responses.CreateResponseAsync("gpt-4o", "hello");
        Assert.Equal(FakeReply.Ok.Text, result.GetOutputText());
        Assert.Equal(21, result.Usage.InputTokenCount);
        Assert.Equal(3, result.Usage.OutputTokenDetails.ReasoningTokenCount);

        ResponseTokenUsage? usage = null;
        var text = "";
        await foreach (var update in await responses.CreateResponseStreamingAsync("gpt-4o", "hello"))
        {
            if (update is StreamingResponseOutputTextDeltaUpdate delta)
            {
                text += delta.Delta;
            }
            else if (update is StreamingResponseCompletedUpdate completed)
            {
                usage = completed.Response.Usage;
            }
        }

        Assert.Equal(FakeReply.Ok.Text, text);
        Assert.Equal(29, usage!.TotalTokenCount);
    }

    [Fact]
    public async Task EmbeddingsImagesAudio_SdkParsesReplies()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        var client = Client(server);

        var embedding = await client.GetEmbeddingClient("text-embedding-3-small").GenerateEmbeddingAsync("hello");
        Assert.Equal(8, embedding.Value.ToFloats().Length);

        var image = await client.GetImageClient("gpt-image-1").GenerateImageAsync("a cat");
        Assert.NotNull(image.Value.ImageBytes);

        using var audio = new MemoryStream([1, 2, 3, 4]);
        var transcription = await client.GetAudioClient("gpt-4o-transcribe").TranscribeAudioAsync(audio, "a.wav");
        Assert.Equal(FakeReply.Ok.Text, transcription.Value.Text);
        Assert.Equal("gpt-4o-transcribe", server.Requests[^1].Model);
    }

    [Fact]
    public async Task Failures_AreScriptedInOrder()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        server.Enqueue(FakeReply.Error(429, TimeSpan.FromMilliseconds(1)), FakeReply.Ok);
        var chat = Client(server, maxRetries: 1).GetChatClient("gpt-4o");

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("hi")]);
        Assert.Equal(2, server.RequestCount);
        Assert.Equal(FakeReply.Ok.Text, completion.Content[0].Text);

        server.Enqueue(FakeReply.Error(500));
        var noRetry = Client(server).GetChatClient("gpt-4o");
        var error = await Assert.ThrowsAsync<ClientResultException>(() => noRetry.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(500, error.Status);

        // The cut aborts the connection. Should the same request reach the server a second time (a
        // transport-level resend), it must be cut too, not get the default success: the rare "no
        // exception" flake seen under heavy load is consistent with that (suspected, not reproduced).
        var cutReply = new FakeReply { Kind = FakeReplyKind.CutStream, CutAfterChunks = 2 };
        server.Enqueue(cutReply);
        server.DefaultReply = cutReply;
        var updates = 0;
        var cut = await Record.ExceptionAsync(async () =>
        {
            await foreach (var _ in noRetry.CompleteChatStreamingAsync([new UserChatMessage("hi")]))
            {
                updates++;
            }
        });
        Assert.True(cut is not null, $"no exception after {updates} updates, {server.RequestCount} requests");
    }
}
