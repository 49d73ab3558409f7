using System.Net;
using HomeworkApi.Tests.Infrastructure;
using TokenMeter;
using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests;

/// <summary>CONTRACT §3: <c>/api/chat</c> with <c>stream:true</c> answers as server-sent events and its usage is recorded.</summary>
public sealed class StreamingChatTests : IClassFixture<FakeModelFixture>
{
    private readonly FakeModelFixture _fixture;

    public StreamingChatTests(FakeModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    [Fact]
    public async Task StreamedChat_SendsDeltasThenDoneWithUsage_EqualToStoredRecord()
    {
        _fixture.Model.Enqueue(new FakeReply { Text = "What is two times two?", Usage = new FakeUsage { PromptTokens = 300, CompletionTokens = 6, CachedTokens = 128 } });
        var (userId, token) = await _fixture.App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = _fixture.App.ClientWithToken(token);

        var response = await client.PostAsync("/api/chat", HomeworkApp.Json(new
        {
            messages = new[] { new { role = "user", content = "Help me with 2x2" }, new { role = "assistant", content = "Sure." }, new { role = "user", content = "Go on" } },
            problemContext = "Compute 2 x 2",
            stream = true,
            sessionId = session,
        }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await ServerSentEvents.ReadAsync(response);
        var deltas = events.Where(e => e.Event == "delta").Select(e => e.Data["content"]!.GetValue<string>()).ToList();
        Assert.True(deltas.Count > 1);
        Assert.Equal("What is two times two?", string.Concat(deltas));
        var (name, done) = events[^1];
        Assert.Equal("done", name);
        Assert.Equal("What is two times two?", done["reply"]!.GetValue<string>());

        var record = Assert.Single(await _fixture.App.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.True(record.Streaming);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(userId, record.UserId);
        Assert.Equal("/api/chat", record.Endpoint);
        var usage = done["usage"]!;
        Assert.Equal(300, usage["inputTokens"]!.GetValue<long>());
        Assert.Equal(128, usage["cachedInputTokens"]!.GetValue<long>());
        Assert.Equal(record.OutputTokens, usage["outputTokens"]!.GetValue<long>());
        Assert.Equal(record.TotalTokens, usage["totalTokens"]!.GetValue<long>());
        Assert.Equal(record.CostUsd, usage["costUsd"]!.GetValue<decimal>());

        var sent = _fixture.Model.Requests[0].Json!;
        Assert.True(sent["stream"]!.GetValue<bool>());
        Assert.Contains("Compute 2 x 2", sent["messages"]![1]!["content"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamedChat_CutByTheModel_EndsWithErrorEvent_AndIsRecorded()
    {
        _fixture.Model.Enqueue(new FakeReply { Kind = FakeReplyKind.CutStream, CutAfterChunks = 3, Text = "one two three four five six" });
        var session = Guid.NewGuid().ToString("N");
        using var client = _fixture.App.CreateClient();

        var response = await client.PostAsync("/api/chat", HomeworkApp.Json(new { messages = new[] { new { role = "user", content = "count" } }, stream = true, sessionId = session }));

        // Where the cut lands is a race: before the first update is read (a 502 problem) or after (an error event).
        if (response.StatusCode == HttpStatusCode.OK)
        {
            var events = await ServerSentEvents.ReadAsync(response);
            Assert.Equal("error", events[^1].Event);
            Assert.Equal(502, events[^1].Data["status"]!.GetValue<int>());
        }
        else
        {
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        }

        Assert.NotEqual(UsageStatus.Ok, Assert.Single(await _fixture.App.WaitForRecordsAsync(r => r.SessionId == session)).Status);
    }

    [Fact]
    public async Task NonStreamedChat_AnswersReplyAndUsage()
    {
        var session = Guid.NewGuid().ToString("N");
        using var client = _fixture.App.CreateClient();

        var response = await client.PostAsync("/api/chat", HomeworkApp.Json(new { messages = new[] { new { role = "user", content = "hi" } }, sessionId = session }));

        var json = await HomeworkApp.JsonAsync(response);
        Assert.StartsWith("Let's look", json["reply"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(160, json["usage"]!["totalTokens"]!.GetValue<long>());
        Assert.False(Assert.Single(await _fixture.App.WaitForRecordsAsync(r => r.SessionId == session)).Streaming);
    }
}
