using System.Net;
using System.Net.Http.Json;
using HomeworkApi.Tests.Infrastructure;
using Npgsql;
using TokenMeter;

namespace HomeworkApi.Tests;

/// <summary>The sample on PostgreSQL: accounts in its own table, usage in the TokenMeter store.</summary>
public sealed class PostgresEndToEndTests : IClassFixture<PostgresModelFixture>
{
    private readonly PostgresModelFixture _fixture;

    public PostgresEndToEndTests(PostgresModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    private HomeworkApp App => _fixture.App;

    [Fact]
    public async Task Info_And_Health_ReportPostgres()
    {
        using var client = App.CreateClient();

        var info = await HomeworkApp.JsonAsync(await client.GetAsync("/api/info"));
        var health = await client.GetAsync("/health");

        Assert.Equal("postgresql", info["storage"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Accounts_AreStoredInPostgres_AndSurviveARestart()
    {
        var (userId, _) = await App.RegisterAsync("pgstudent", "Elephant-tusk-15");

        await using (var connection = new NpgsqlConnection(_fixture.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT username, role FROM homework_users WHERE id = @id", connection);
            command.Parameters.AddWithValue("id", long.Parse(userId, System.Globalization.CultureInfo.InvariantCulture));
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal("pgstudent", reader.GetString(0));
            Assert.Equal("student", reader.GetString(1));
        }

        // A second instance on the same database (installing the tables again is harmless), with a new admin password.
        await using var second = _fixture.CreateApp(new Dictionary<string, string?> { ["Admin:Password"] = "Rotated-harbour-key-2" });
        Assert.False(string.IsNullOrEmpty(await second.LoginAsync("pgstudent", "Elephant-tusk-15")));
        Assert.False(string.IsNullOrEmpty(await second.LoginAsync(HomeworkApp.AdminUsername, "Rotated-harbour-key-2")));
        using var client = second.CreateClient();
        var old = await client.PostAsJsonAsync("/api/auth/login", new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword });
        Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
        var duplicate = await client.PostAsJsonAsync("/api/auth/register", new { username = "PGSTUDENT", email = "x@example.com", password = "Elephant-tusk-15" });
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
    }

    [Fact]
    public async Task Analyze_ChargesTokenUser_AndStoredRecordMatchesResponseUsage()
    {
        var (userId, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(token);

        var response = await client.PostAsync("/api/analyze", HomeworkApp.Json(new { problemText = "Solve 2x + 3 = 7", sessionId = session, problemId = "p-1", metadata = new { device = "android" } }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = (await HomeworkApp.JsonAsync(response))["usage"]!;
        var record = Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.Equal(userId, record.UserId);
        Assert.Equal("/api/analyze", record.Endpoint);
        Assert.Equal("p-1", record.ProblemId);
        Assert.Equal("android", record.Tags!["device"]);
        Assert.Equal(record.InputTokens, usage["inputTokens"]!.GetValue<long>());
        Assert.Equal(record.CachedInputTokens, usage["cachedInputTokens"]!.GetValue<long>());
        Assert.Equal(record.OutputTokens, usage["outputTokens"]!.GetValue<long>());
        Assert.Equal(record.TotalTokens, usage["totalTokens"]!.GetValue<long>());
        Assert.Equal(record.CostUsd, usage["costUsd"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task BodyUserId_UnknownIs400_OtherStudentIs403_AnonymousIs401_NoModelCall()
    {
        var (otherId, _) = await App.RegisterAsync();
        var (_, token) = await App.RegisterAsync();
        using var admin = App.ClientWithToken(await App.AdminTokenAsync());
        using var anonymous = App.CreateClient();
        using var student = App.ClientWithToken(token);

        var anonymousNaming = await anonymous.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "x", userId = otherId }));
        var unknown = await admin.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "x", userId = 987654 }));
        var other = await student.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "x", userId = otherId }));

        Assert.Equal(HttpStatusCode.Unauthorized, anonymousNaming.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
        Assert.Equal(0, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task StreamedChat_IsRecordedInPostgres()
    {
        var (userId, token) = await App.RegisterAsync();
        var session = Guid.NewGuid().ToString("N");
        using var client = App.ClientWithToken(token);

        var response = await client.PostAsync("/api/chat", HomeworkApp.Json(new { messages = new[] { new { role = "user", content = "hello" } }, stream = true, sessionId = session }));

        var events = await ServerSentEvents.ReadAsync(response);
        Assert.Equal("done", events[^1].Event);
        var record = Assert.Single(await App.WaitForRecordsAsync(r => r.SessionId == session));
        Assert.True(record.Streaming);
        Assert.Equal(userId, record.UserId);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(record.TotalTokens, events[^1].Data["usage"]!["totalTokens"]!.GetValue<long>());
    }
}
