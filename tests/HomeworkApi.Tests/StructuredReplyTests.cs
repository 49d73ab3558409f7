using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Homework;
using HomeworkApi.Tests.Infrastructure;
using OpenAI.Chat;
using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests;

/// <summary>
/// The answers of the structured routes are written straight from the model's JSON: its fields as they are,
/// then <c>hintNumber</c> (hints) and the request's <c>usage</c>, each once.
/// </summary>
public sealed class StructuredReplyTests : IClassFixture<FakeModelFixture>
{
    private readonly FakeModelFixture _fixture;

    public StructuredReplyTests(FakeModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    private HomeworkApp App => _fixture.App;

    [Fact]
    public async Task Hint_Answer_IsTheModelsFields_ThenHintNumber_ThenUsageOfTheStoredRecord()
    {
        var (userId, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(token);

        var response = await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "Solve 3x = 9", previousHints = new[] { "Think about division.", "What times 3 is 9?" }, sessionId = session }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        var text = await response.Content.ReadAsStringAsync();
        var json = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(["hint", "concept", "nextStep", "hintNumber", "usage"], json.Select(p => p.Key));
        Assert.Equal("What could you do to both sides to get 2x alone?", json["hint"]!.GetValue<string>());
        Assert.Equal("inverse operations", json["concept"]!.GetValue<string>());
        Assert.Equal("Undo the +3.", json["nextStep"]!.GetValue<string>());
        Assert.Equal(3, json["hintNumber"]!.GetValue<int>());

        var record = Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.Equal(userId, record.UserId);
        var usage = json["usage"]!.AsObject();
        Assert.Equal(
            ["inputTokens", "cachedInputTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens", "totalTokens", "costUsd", "model"],
            usage.Select(p => p.Key));
        Assert.Equal(record.InputTokens, usage["inputTokens"]!.GetValue<long>());
        Assert.Equal(record.CachedInputTokens, usage["cachedInputTokens"]!.GetValue<long>());
        Assert.Equal(record.OutputTokens, usage["outputTokens"]!.GetValue<long>());
        Assert.Equal(record.TotalTokens, usage["totalTokens"]!.GetValue<long>());
        Assert.Equal(record.CostUsd, usage["costUsd"]!.GetValue<decimal>());
        Assert.Equal(record.Model, usage["model"]!.GetValue<string>());
    }

    [Fact]
    public async Task Hint_ModelRepliesWithItsOwnUsageAndHintNumber_TheAppsReplaceThem_OtherFieldsKeptAsSent()
    {
        _fixture.Model.Responder = r => new FakeReply
        {
            Text = """
                { "hint": "Try <b>dividing</b> \u00e9 \"both\" sides.", "usage": {"inputTokens": -1}, "concept": "division",
                  "hintNumber": 99, "nextStep": "Divide by 3.", "extra": {"list": [1, 2.50, true, null, "x"], "deep": {"a": []}} }
                """,
        };
        using var client = App.CreateClient();

        var response = await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "Solve 3x = 9" }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(1, Occurrences(text, "\"usage\""));
        Assert.Equal(1, Occurrences(text, "\"hintNumber\""));

        // Written with the app's JSON options: relaxed escaping (HTML characters and accents as they are), no whitespace.
        Assert.Contains("""{"hint":"Try <b>dividing</b> é \"both\" sides.","concept":"division","nextStep":"Divide by 3.","extra":{"list":[1,2.50,true,null,"x"],"deep":{"a":[]}},"hintNumber":1,"usage":{"inputTokens":""", text, StringComparison.Ordinal);
        var json = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(1, json["hintNumber"]!.GetValue<int>());
        Assert.True(json["usage"]!["inputTokens"]!.GetValue<long>() > 0);
    }

    [Fact]
    public async Task Analyze_ModelsOwnHintNumber_IsKept_ItsUsage_IsReplaced()
    {
        _fixture.Model.Responder = r => new FakeReply
        {
            Text = """{"problemStatement":"p","subject":"math","topic":"t","difficulty":"easy","steps":[],"finalAnswer":"2","keyConcepts":[],"commonMistakes":[],"hintNumber":7,"usage":"mine"}""",
        };
        using var client = App.CreateClient();

        var response = await client.PostAsync("/api/analyze", HomeworkApp.Json(new { problemText = "Solve 2x = 4" }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await HomeworkApp.JsonAsync(response);
        Assert.Equal(7, json["hintNumber"]!.GetValue<int>());
        Assert.Equal(JsonValueKind.Object, json["usage"]!.GetValueKind());
        Assert.Equal("usage", json.Last().Key);
    }

    [Theory]
    [InlineData("""["hint","concept","nextStep"]""")]
    [InlineData("""{"hint":"h","concept":"c"}""")]
    [InlineData("""{"Hint":"h","Concept":"c","NextStep":"n"}""")]
    [InlineData("""{"hint":"h","concept":"c","nextStep":"n"} trailing""")]
    [InlineData("\"just a string\"")]
    public async Task Hint_ReplyNotAnObjectOfTheSchema_Is502(string reply)
    {
        _fixture.Model.Responder = r => new FakeReply { Text = reply };
        using var client = App.CreateClient();

        var response = await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "Solve 3x = 9" }));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var problem = await HomeworkApp.JsonAsync(response);
        Assert.Equal("The model's reply was not the JSON object the endpoint asked for (hint).", problem["detail"]!.GetValue<string>());
    }

    [Fact]
    public void HintPrompt_IsTheContextTheProblemAndThePreviousHints_LineByLine()
    {
        var nl = Environment.NewLine;
        var first = HomeworkPrompts.Hint(HomeworkRequest.From(HomeworkFeature.Hint, new HintBody { ProblemText = "Solve 3x = 9", Subject = "math" }));
        var third = HomeworkPrompts.Hint(HomeworkRequest.From(HomeworkFeature.Hint, new HintBody { ProblemText = "Solve 3x = 9", GradeLevel = "4", PreviousHints = ["Think about division.", "What times 3 is 9?"] }));

        Assert.Equal(HomeworkPrompts.HintSystem, Assert.IsType<SystemChatMessage>(first[0]).Content[0].Text);
        Assert.Equal(
            $"Grade level: not given{nl}Subject: math{nl}Problem:\nSolve 3x = 9{nl}Previous hints: none. This is hint number 1.{nl}",
            Assert.IsType<UserChatMessage>(first[1]).Content[0].Text);
        Assert.Equal(
            $"Grade level: 4{nl}Subject: not given{nl}Problem:\nSolve 3x = 9{nl}Previous hints, in order:{nl}1. Think about division.{nl}2. What times 3 is 9?{nl}This is hint number 3: go one step further than the last hint.{nl}",
            Assert.IsType<UserChatMessage>(third[1]).Content[0].Text);
    }

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
