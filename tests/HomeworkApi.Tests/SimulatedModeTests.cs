using System.Net;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;
using TokenMeter;

namespace HomeworkApi.Tests;

/// <summary>With no API key and no endpoint, the in-process model answers through the real SDK, metering and store.</summary>
public sealed class SimulatedModeTests : IAsyncLifetime
{
    private readonly HomeworkApp _app = new();

    public Task InitializeAsync()
    {
        _ = _app.Server;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task Info_SaysSimulatedAndInMemory()
    {
        using var client = _app.CreateClient();

        var info = await HomeworkApp.JsonAsync(await client.GetAsync("/api/info"));

        Assert.True(info["simulatedModel"]!.GetValue<bool>());
        Assert.Equal("memory", info["storage"]!.GetValue<string>());
        Assert.Equal("gpt-4o", info["models"]!["analyze"]!.GetValue<string>());
    }

    [Fact]
    public async Task EveryRoute_Answers_WithRealTokenCountsAndCost_MatchingTheStore()
    {
        var (userId, token) = await _app.RegisterAsync();
        using var client = _app.ClientWithToken(token);
        var png = "data:image/png;base64," + Convert.ToBase64String([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 7, 7, 7]);
        var calls = new (string Route, object Body, string Field)[]
        {
            ("/api/validate-image", new { imageBase64 = png }, "isReadable"),
            ("/api/analyze", new { problemText = "Solve 2x + 3 = 7", gradeLevel = 7 }, "steps"),
            ("/api/hint", new { problemText = "Solve 2x + 3 = 7", previousHints = new[] { "Undo the +3." } }, "hint"),
            ("/api/verify", new { problemText = "Solve 2x + 3 = 7", answer = "x = 2" }, "verdict"),
            ("/api/chat", new { messages = new[] { new { role = "user", content = "Where do I start?" } }, problemContext = "2x + 3 = 7" }, "reply"),
        };

        foreach (var (route, body, field) in calls)
        {
            var session = Guid.NewGuid().ToString("N");
            var json = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(body))!.AsObject();
            json["sessionId"] = session;
            var response = await client.PostAsync(route, HomeworkApp.RawJson(json.ToJsonString()));

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var answer = await HomeworkApp.JsonAsync(response);
            Assert.True(answer.ContainsKey(field), route + " lacks " + field);
            var usage = answer["usage"]!;
            var record = Assert.Single(await _app.WaitForRecordsAsync(r => r.SessionId == session));
            Assert.Equal(route, record.Endpoint);
            Assert.Equal(userId, record.UserId);
            Assert.Equal(UsageStatus.Ok, record.Status);
            Assert.True(record.InputTokens > 100, route + " input tokens");
            Assert.True(record.OutputTokens > 5, route + " output tokens");
            Assert.True(record.CostUsd > 0m);
            Assert.Equal(record.InputTokens, usage["inputTokens"]!.GetValue<long>());
            Assert.Equal(record.OutputTokens, usage["outputTokens"]!.GetValue<long>());
            Assert.Equal(record.CostUsd, usage["costUsd"]!.GetValue<decimal>());
        }
    }

    [Fact]
    public async Task ImageOfExactly10MiB_IsAccepted_AndCostsImageTokens()
    {
        var bytes = new byte[10 * 1024 * 1024];
        bytes[0] = 0xFF;
        bytes[1] = 0xD8;
        bytes[2] = 0xFF;
        using var client = _app.CreateClient();

        var response = await client.PostAsync("/api/validate-image", HomeworkApp.Json(new { imageBase64 = "data:image/jpeg;base64," + Convert.ToBase64String(bytes) }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await HomeworkApp.JsonAsync(response))["usage"]!["inputTokens"]!.GetValue<long>() > 765);
    }

    [Fact]
    public async Task RepeatedPrompt_ReportsCachedInputTokens()
    {
        using var client = _app.CreateClient();
        var body = new { problemText = "A train leaves at 3 pm going 60 km/h. When has it gone 150 km?" };

        var first = (await HomeworkApp.JsonAsync(await client.PostAsync("/api/analyze", HomeworkApp.Json(body))))["usage"]!;
        var second = (await HomeworkApp.JsonAsync(await client.PostAsync("/api/analyze", HomeworkApp.Json(body))))["usage"]!;

        Assert.Equal(first["inputTokens"]!.GetValue<long>(), second["inputTokens"]!.GetValue<long>());
        Assert.True(second["cachedInputTokens"]!.GetValue<long>() >= 128);
        Assert.True(second["cachedInputTokens"]!.GetValue<long>() <= second["inputTokens"]!.GetValue<long>());
        Assert.True(second["costUsd"]!.GetValue<decimal>() < first["costUsd"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task StreamedChat_StreamsAndRecordsUsage()
    {
        var session = Guid.NewGuid().ToString("N");
        using var client = _app.CreateClient();

        var response = await client.PostAsync("/api/chat", HomeworkApp.Json(new { messages = new[] { new { role = "user", content = "Is 7 prime?" } }, stream = true, sessionId = session }));

        var events = await ServerSentEvents.ReadAsync(response);
        Assert.True(events.Count(e => e.Event == "delta") > 3);
        var done = events[^1];
        Assert.Equal("done", done.Event);
        var record = Assert.Single(await _app.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.True(record.Streaming);
        Assert.Equal(record.OutputTokens, done.Data["usage"]!["outputTokens"]!.GetValue<long>());
        Assert.True(record.OutputTokens > 10);
    }

    [Fact]
    public async Task Health_AdminPortal_AndOpenApi_AreServed()
    {
        using var client = _app.CreateClient();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);
        var portal = await client.GetAsync("/admin");
        Assert.Equal(HttpStatusCode.OK, portal.StatusCode);
        Assert.Contains("<title>", await portal.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/openapi/v1.json")).StatusCode);
        using var admin = _app.ClientWithToken(await _app.AdminTokenAsync());
        var openApi = await admin.GetStringAsync("/openapi/v1.json");
        Assert.Contains("/api/analyze", openApi, StringComparison.Ordinal);
    }
}
