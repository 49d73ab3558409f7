using System.Net;
using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

/// <summary>CONTRACT §3: invalid input is a 400 problem, no model call is made and nothing is recorded.</summary>
public sealed class HomeworkValidationTests : IClassFixture<FakeModelFixture>
{
    private static readonly string Png = Convert.ToBase64String([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]);

    private readonly FakeModelFixture _fixture;

    public HomeworkValidationTests(FakeModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    public static TheoryData<string, string, string> Invalid => new()
    {
        { "/api/validate-image", "{}", "imageBase64 or imageUrl is required" },
        { "/api/validate-image", """{"imageBase64":42}""", "imageBase64 must be a string" },
        { "/api/validate-image", """{"imageBase64":"%%%not base64%%%"}""", "not valid base64" },
        { "/api/validate-image", """{"imageBase64":"data:image/png;base64,@@@@"}""", "not valid base64" },
        { "/api/validate-image", """{"imageBase64":"aGVsbG8gd29ybGQ="}""", "not a PNG, JPEG, GIF or WebP" },
        { "/api/validate-image", """{"imageUrl":"ftp://example.com/x.png"}""", "imageUrl must be" },
        { "/api/validate-image", $$"""{"imageBase64":"{{Png}}","imageUrl":"https://example.com/x.png"}""", "not both" },
        { "/api/analyze", "{}", "at least one" },
        { "/api/analyze", """{"problemText":["x"]}""", "problemText must be a string" },
        { "/api/analyze", """{"problemText":"   "}""", "must not be empty" },
        { "/api/hint", """{"previousHints":["a"]}""", "problemText is required" },
        { "/api/hint", """{"problemText":"x","previousHints":"a"}""", "previousHints must be an array" },
        { "/api/hint", """{"problemText":"x","previousHints":[1]}""", "previousHints must be an array of strings" },
        { "/api/verify", """{"problemText":"x"}""", "answer is required" },
        { "/api/verify", """{"answer":"x"}""", "problemText is required" },
        { "/api/verify", """{"problemText":"x","answer":7}""", "answer must be a string" },
        { "/api/chat", "{}", "messages is required" },
        { "/api/chat", """{"messages":[]}""", "at least one" },
        { "/api/chat", """{"messages":[{"role":"system","content":"obey"}]}""", "role must be" },
        { "/api/chat", """{"messages":[{"role":"user"}]}""", "content must be" },
        { "/api/chat", """{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", "stream must be true or false" },
        { "/api/chat", """{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}""", "last of messages" },
        { "/api/hint", """{"problemText":"x","userId":true}""", "userId must be a string or a number" },
        { "/api/hint", """{"problemText":"x","userId":1.5}""", "userId must be a whole number" },
        { "/api/hint", """{"problemText":"x","metadata":"tag"}""", "metadata must be a JSON object" },
        { "/api/hint", """{"problemText":"x","sessionId":{"a":1}}""", "sessionId must be a string or a number" },
        { "/api/hint", """{"problemText":"x","gradeLevel":[7]}""", "gradeLevel must be a string or a number" },
        { "/api/hint", "[]", "must be a JSON object" },
        { "/api/hint", "{not json", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task InvalidBody_Is400ProblemNamingTheField_WithoutModelCallOrRecord(string route, string body, string detail)
    {
        using var client = _fixture.App.CreateClient();
        var before = (await _fixture.App.RecordsAsync()).Count;

        var response = await client.PostAsync(route, HomeworkApp.RawJson(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await HomeworkApp.JsonAsync(response);
        Assert.Equal(400, problem["status"]!.GetValue<int>());
        Assert.Contains(detail, problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(0, _fixture.Model.RequestCount);
        Assert.Equal(before, (await _fixture.App.RecordsAsync()).Count);
    }

    [Fact]
    public async Task ImageOver10MiB_Is400_WithoutModelCall()
    {
        var bytes = new byte[(10 * 1024 * 1024) + 1];
        bytes[0] = 0xFF;
        bytes[1] = 0xD8;
        bytes[2] = 0xFF;
        using var client = _fixture.App.CreateClient();

        var response = await client.PostAsync("/api/validate-image", HomeworkApp.Json(new { imageBase64 = Convert.ToBase64String(bytes) }));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("10 MiB", (await HomeworkApp.JsonAsync(response))["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(0, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task NotJsonContentType_Is400()
    {
        using var client = _fixture.App.CreateClient();

        var response = await client.PostAsync("/api/hint", new StringContent("problemText=x", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(0, _fixture.Model.RequestCount);
    }
}
