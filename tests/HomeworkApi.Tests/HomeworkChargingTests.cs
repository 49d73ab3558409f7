using System.Net;
using HomeworkApi.Tests.Infrastructure;
using TokenMeter;

namespace HomeworkApi.Tests;

/// <summary>CONTRACT §3: who is charged, and what the usage record and the response's usage hold.</summary>
public sealed class HomeworkChargingTests : IClassFixture<FakeModelFixture>
{
    private readonly FakeModelFixture _fixture;

    public HomeworkChargingTests(FakeModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    private HomeworkApp App => _fixture.App;

    public static TheoryData<string, string> Routes => new()
    {
        { "/api/validate-image", """{"imageUrl":"https://example.com/page.png"}""" },
        { "/api/analyze", """{"problemText":"Solve 2x + 3 = 7"}""" },
        { "/api/hint", """{"problemText":"Solve 2x + 3 = 7","previousHints":["Think about inverse operations."]}""" },
        { "/api/verify", """{"problemText":"Solve 2x + 3 = 7","answer":"x = 2"}""" },
        { "/api/chat", """{"messages":[{"role":"user","content":"How do I start?"}],"problemContext":"Solve 2x + 3 = 7"}""" },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task Route_SignedInStudent_ChargesTokenUser_WithUsageEqualToStoredRecord(string route, string body)
    {
        var (userId, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(token);

        var response = await client.PostAsync(route, HomeworkApp.RawJson(body[..^1] + $$$""","sessionId":"{{{session}}}","problemId":42,"gradeLevel":"7","metadata":{"device":"ios","build":17}}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await HomeworkApp.JsonAsync(response);
        var usage = json["usage"]!.AsObject();
        var record = Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.Equal(userId, record.UserId);
        Assert.Equal(route, record.Endpoint);
        Assert.Equal("42", record.ProblemId);
        Assert.Equal("ios", record.Tags!["device"]);
        Assert.Equal("17", record.Tags!["build"]);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(120, record.InputTokens);
        Assert.Equal(20, record.CachedInputTokens);
        Assert.Equal(40, record.OutputTokens);
        Assert.Equal(record.InputTokens, usage["inputTokens"]!.GetValue<long>());
        Assert.Equal(record.CachedInputTokens, usage["cachedInputTokens"]!.GetValue<long>());
        Assert.Equal(record.OutputTokens, usage["outputTokens"]!.GetValue<long>());
        Assert.Equal(record.ReasoningTokens, usage["reasoningTokens"]!.GetValue<long>());
        Assert.Equal(record.TotalTokens, usage["totalTokens"]!.GetValue<long>());
        Assert.Equal(record.CostUsd, usage["costUsd"]!.GetValue<decimal>());
        Assert.True(record.CostUsd > 0m);
        Assert.Equal(record.Model, usage["model"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("number")]
    [InlineData("string")]
    public async Task Anonymous_WithBodyUserId_Is401_NoModelCall_NothingRecorded_BudgetUntouched(string form)
    {
        // Before: 30 anonymous calls naming a student spent that student's month's budget.
        var (userId, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        var idJson = form == "number" ? userId : $"\"{userId}\"";
        using var client = App.CreateClient();

        var response = await client.PostAsync("/api/hint", HomeworkApp.RawJson($$"""{"problemText":"2+2","userId":{{idJson}},"sessionId":"{{session}}"}"""));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await HomeworkApp.JsonAsync(response);
        Assert.Equal(401, problem["status"]!.GetValue<int>());
        Assert.Contains("userId", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(0, _fixture.Model.RequestCount);
        Assert.Empty(await App.RecordsAsync(r => r.SessionId == session));
        using var student = App.ClientWithToken(token);
        var me = await HomeworkApp.JsonAsync(await student.GetAsync("/api/usage/me"));
        Assert.Equal(0, me["totalCalls"]!.GetValue<long>());
    }

    [Fact]
    public async Task Anonymous_WithoutUserId_IsRecordedWithNullUser()
    {
        var session = Guid.NewGuid().ToString("N");
        using var client = App.CreateClient();

        var response = await client.PostAsync("/api/verify", HomeworkApp.Json(new { problemText = "2+2", answer = "4", sessionId = session }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session)).UserId);
    }

    [Fact]
    public async Task SignedInStudent_NamingOwnId_IsCharged()
    {
        var (userId, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(token);

        var response = await client.PostAsync("/api/hint", HomeworkApp.RawJson($$"""{"problemText":"2+2","userId":{{userId}},"sessionId":"{{session}}"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(userId, Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session)).UserId);
    }

    [Fact]
    public async Task SignedInStudent_NamingAnotherUser_Is403_WithoutModelCall()
    {
        var (otherId, _) = await App.RegisterAsync();
        var (_, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(token);

        var response = await client.PostAsync("/api/analyze", HomeworkApp.Json(new { problemText = "2+2", userId = otherId, sessionId = session }));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, _fixture.Model.RequestCount);
        Assert.Empty(await App.RecordsAsync(r => r.SessionId == session));
    }

    [Fact]
    public async Task Admin_NamingAStudent_ChargesTheStudent()
    {
        var (studentId, _) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(await App.AdminTokenAsync());

        var response = await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "2+2", userId = studentId, sessionId = session }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(studentId, Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session)).UserId);
    }

    [Theory]
    [InlineData("999999")]
    [InlineData("\"999999\"")]
    [InlineData("\"not-a-user\"")]
    public async Task Admin_NamingUnknownBodyUserId_Is400_WithoutModelCall(string idJson)
    {
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(await App.AdminTokenAsync());

        var response = await client.PostAsync("/api/hint", HomeworkApp.RawJson($$"""{"problemText":"2+2","userId":{{idJson}},"sessionId":"{{session}}"}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await HomeworkApp.JsonAsync(response);
        Assert.Contains("names no account", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(0, _fixture.Model.RequestCount);
        Assert.Empty(await App.RecordsAsync(r => r.SessionId == session));
    }

    [Fact]
    public async Task InvalidBearerToken_Is401_WithoutModelCall()
    {
        using var client = App.ClientWithToken("not.a.token");

        var response = await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "2+2" }));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(0, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task Models_ComeFromConfigurationPerEndpoint()
    {
        using var client = App.CreateClient();
        foreach (var (route, body) in new[]
        {
            ("/api/validate-image", """{"imageUrl":"https://example.com/p.png"}"""),
            ("/api/analyze", """{"problemText":"x"}"""),
            ("/api/hint", """{"problemText":"x"}"""),
            ("/api/verify", """{"problemText":"x","answer":"y"}"""),
            ("/api/chat", """{"messages":[{"role":"user","content":"hi"}]}"""),
        })
        {
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync(route, HomeworkApp.RawJson(body))).StatusCode);
        }

        Assert.Equal(["gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"], _fixture.Model.Requests.Select(r => r.Model));
    }

    [Fact]
    public async Task Prompts_CarryGradeLevel_PreviousHints_AndImage()
    {
        using var client = App.CreateClient();
        var png = Convert.ToBase64String([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4]);

        await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "Solve 3x = 9", gradeLevel = 4, previousHints = new[] { "Think about division.", "What times 3 is 9?" } }));
        await client.PostAsync("/api/analyze", HomeworkApp.Json(new { imageBase64 = "data:image/png;base64," + png }));

        var hint = _fixture.Model.Requests[0].Body;
        Assert.Contains("Grade level: 4", hint, StringComparison.Ordinal);
        Assert.Contains("2. What times 3 is 9?", hint, StringComparison.Ordinal);
        Assert.Contains("hint number 3", hint, StringComparison.Ordinal);
        Assert.Contains("Do not state the final answer", hint, StringComparison.Ordinal);
        Assert.Contains("data:image/png;base64," + png, _fixture.Model.Requests[1].Body, StringComparison.Ordinal);
        Assert.Equal("problem_analysis", FakeModelReplies.Schema(_fixture.Model.Requests[1]));
    }
}
