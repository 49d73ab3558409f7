using System.Net;
using System.Net.Http.Json;
using HomeworkApi.Tests.Infrastructure;
using TokenMeter.Testing;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;

namespace HomeworkApi.Tests;

/// <summary>
/// PostgreSQL down when the sample starts: the app starts anyway (no crash loop), the routes that need
/// the database answer 503 with Retry-After, and once PostgreSQL answers the account table and the admin
/// account are set up in the background and everything works. Uses a cluster of its own, since it stops it.
/// </summary>
public sealed class StoreDownAtStartTests
{
    [Fact]
    public async Task PostgresDownAtStart_AppStarts_Answers503_ThenSetsItselfUpWhenPostgresAnswers()
    {
        await using var server = await PostgresServer.StartAsync();
        var connectionString = await server.CreateDatabaseAsync("downatstart");
        await using var model = await FakeOpenAIServer.StartAsync();
        model.Responder = r => FakeModelReplies.For(r);
        await server.StopAsync();

        await using var app = HomeworkApp.WithModelEndpoint(model.Endpoint, new Dictionary<string, string?>
        {
            ["ConnectionStrings:TokenMeter"] = connectionString + ";Timeout=3",
            ["TokenMeter:Postgres:InstallRetryDelay"] = "00:00:01",
            ["TokenMeter:Writer:SpoolDirectory"] = Path.Combine(Path.GetTempPath(), "tokenmeter-downatstart-" + Guid.NewGuid().ToString("N")),
        });

        // Starting does not throw: the admin account waits for the database.
        using var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/info")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/health")).StatusCode);
        var login = new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword };
        using (var down = await client.PostAsJsonAsync("/api/auth/login", login))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            Assert.Equal("application/problem+json", down.Content.Headers.ContentType?.MediaType);
            Assert.True(down.Headers.RetryAfter?.Delta > TimeSpan.Zero, "no Retry-After");
        }

        await server.StartAgainAsync();

        // The seeder retries every 2 s: the admin signs in within a few seconds, and the usage API answers.
        await Eventually.TrueAsync(
            async _ =>
            {
                using var response = await client.PostAsJsonAsync("/api/auth/login", login);
                return response.StatusCode == HttpStatusCode.OK;
            },
            timeout: TimeSpan.FromSeconds(30),
            pollInterval: TimeSpan.FromMilliseconds(200),
            what: "the admin signs in once PostgreSQL answers");
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/usage/stats")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/users")).StatusCode);
        var (_, token) = await app.RegisterAsync();
        using var student = app.ClientWithToken(token);
        Assert.Equal(HttpStatusCode.OK, (await student.GetAsync("/api/usage/me")).StatusCode);
    }
}
