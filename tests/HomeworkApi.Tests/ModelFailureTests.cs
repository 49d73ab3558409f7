using System.Net;
using HomeworkApi.Tests.Infrastructure;
using TokenMeter;
using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests;

/// <summary>CONTRACT §3: a failing model endpoint is a 502 problem, and the failed attempt is recorded.</summary>
public sealed class ModelFailureTests : IClassFixture<ShortTimeoutFakeModelFixture>
{
    private readonly FakeModelFixture _fixture;

    public ModelFailureTests(ShortTimeoutFakeModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    public static TheoryData<string> Failures => new() { "500", "503", "malformed", "drop", "timeout", "not-json-content" };

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task ModelFailure_Is502Problem_AndAttemptIsRecorded(string failure)
    {
        _fixture.Model.Enqueue(failure switch
        {
            "500" => FakeReply.Error(500),
            "503" => FakeReply.Error(503),
            "malformed" => new FakeReply { Kind = FakeReplyKind.MalformedJson },
            "drop" => new FakeReply { Kind = FakeReplyKind.DropConnection },
            "timeout" => new FakeReply { Delay = TimeSpan.FromSeconds(5) },
            _ => new FakeReply { Text = "Sure! Here is my analysis in prose.", Usage = new FakeUsage { PromptTokens = 50, CompletionTokens = 9 } },
        });
        var (userId, token) = await _fixture.App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = _fixture.App.ClientWithToken(token);

        var response = await client.PostAsync("/api/analyze", HomeworkApp.Json(new { problemText = "Solve 2x + 3 = 7", sessionId = session }));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await HomeworkApp.JsonAsync(response);
        Assert.Equal(502, problem["status"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(problem["detail"]!.GetValue<string>()));
        Assert.Equal(1, _fixture.Model.RequestCount);

        var record = Assert.Single(await _fixture.App.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.Equal(userId, record.UserId);
        Assert.Equal("/api/analyze", record.Endpoint);
        if (failure == "not-json-content")
        {
            // The model answered (and charged) but not in the shape asked for: real usage is kept.
            Assert.Equal(UsageStatus.Ok, record.Status);
            Assert.Equal(59, record.TotalTokens);
        }
        else
        {
            Assert.NotEqual(UsageStatus.Ok, record.Status);
            Assert.Equal(0m, record.CostUsd ?? 0m);
        }

        if (failure is "500" or "503")
        {
            Assert.Equal(UsageStatus.HttpError, record.Status);
            Assert.Equal(int.Parse(failure, System.Globalization.CultureInfo.InvariantCulture), record.HttpStatus);
        }
    }

    [Fact]
    public async Task StreamingChat_ModelFailsBeforeFirstChunk_Is502Problem()
    {
        _fixture.Model.Enqueue(FakeReply.Error(500));
        var session = Guid.NewGuid().ToString("N");
        using var client = _fixture.App.CreateClient();

        var response = await client.PostAsync("/api/chat", HomeworkApp.Json(new { messages = new[] { new { role = "user", content = "hi" } }, stream = true, sessionId = session }));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(UsageStatus.HttpError, Assert.Single(await _fixture.App.WaitForRecordsAsync(r => r.SessionId == session)).Status);
    }
}
