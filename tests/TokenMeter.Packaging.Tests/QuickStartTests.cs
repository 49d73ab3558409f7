using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using TokenMeter.Testing;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;
using TokenMeter.Testing.Scenarios;

namespace TokenMeter.Packaging.Tests;

/// <summary>
/// The root README's quick start is a real program (samples/QuickStart): the README's code block is
/// its Program.cs, and it runs against PostgreSQL and an OpenAI-compatible model, answering its admin
/// routes to a JWT signed the way <c>dotnet user-jwts</c> signs one.
/// </summary>
public sealed class QuickStartTests
{
    private const string Issuer = "dotnet-user-jwts";
    private const string Audience = "http://localhost:5000";
    private static readonly byte[] SigningKey = "quick-start-test-signing-key-0123456789abcdef"u8.ToArray();

    [Fact]
    public void Readme_quick_start_is_exactly_the_compiled_program()
    {
        var program = File.ReadAllText(Path.Combine(PackedLibraries.RepoRoot, "samples", "QuickStart", "Program.cs"));
        var block = QuickStartBlock(File.ReadAllText(Path.Combine(PackedLibraries.RepoRoot, "README.md")));
        Assert.Equal(Normalize(program), Normalize(block));
    }

    [Fact]
    public async Task Quick_start_meters_a_call_and_answers_its_admin_route_to_a_real_token()
    {
        await using var model = await FakeOpenAIServer.StartAsync();
        var postgres = await PostgresServer.GetSharedAsync();
        var database = await postgres.CreateDatabaseAsync("quickstart");
        var spool = Directory.CreateTempSubdirectory("tokenmeter-quickstart-spool-");
        try
        {
            var environment = new Dictionary<string, string?>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["ConnectionStrings__TokenMeter"] = database,
                ["OPENAI_API_KEY"] = "sk-quick-start-test",
                ["OPENAI_BASE_URL"] = model.Endpoint.ToString(),
                ["Authentication__Schemes__Bearer__ValidIssuer"] = Issuer,
                ["Authentication__Schemes__Bearer__ValidAudiences__0"] = Audience,
                ["Authentication__Schemes__Bearer__SigningKeys__0__Issuer"] = Issuer,
                ["Authentication__Schemes__Bearer__SigningKeys__0__Value"] = Convert.ToBase64String(SigningKey),
                ["TokenMeter__Writer__SpoolDirectory"] = spool.FullName,
                ["TokenMeter__Writer__FlushInterval"] = "00:00:00.100",
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
            };

            // Ready once the admin route answers at all (401: no token).
            await using var app = await SampleProcess.StartAsync(
                SampleProcess.BuiltSampleDll("QuickStart"),
                environment,
                "/api/usage/stats",
                static r => r.StatusCode == HttpStatusCode.Unauthorized);
            using var http = new HttpClient { BaseAddress = app.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };

            using (var hint = new HttpRequestMessage(HttpMethod.Post, "/hint") { Content = JsonContent.Create(new { question = "Give me a hint for 2x + 3 = 7" }) })
            {
                hint.Headers.Authorization = Bearer("student-7", "student");
                using var answer = await http.SendAsync(hint);
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                using var body = JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
                Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("hint").GetString()));
            }

            Assert.Equal(1, model.RequestCount);

            // The admin route, to an admin's token: the call is stored, charged to the token's user and route.
            var stored = await Eventually.PollAsync(
                async _ =>
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, "/api/usage/user/student-7");
                    request.Headers.Authorization = Bearer("admin-1", "admin");
                    using var response = await http.SendAsync(request);
                    if (response.StatusCode == HttpStatusCode.NotFound)
                    {
                        return null; // no call of this user stored yet
                    }

                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                },
                static doc => doc?.RootElement.GetProperty("totalCalls").GetInt64() == 1,
                TimeSpan.FromSeconds(30),
                TimeSpan.FromMilliseconds(100));
            Assert.True(stored.Met, "the quick start's call was not stored within 30 s");
            using (var user = stored.Value!)
            {
                Assert.Contains("/hint", user.RootElement.GetRawText(), StringComparison.Ordinal);
                Assert.True(user.RootElement.GetProperty("totalCostUsd").GetDecimal() > 0m);
            }

            // A student may read only their own usage; the admin routes refuse them and anonymous callers.
            using (var me = new HttpRequestMessage(HttpMethod.Get, "/api/usage/me"))
            {
                me.Headers.Authorization = Bearer("student-7", "student");
                using var response = await http.SendAsync(me);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            using (var forbidden = new HttpRequestMessage(HttpMethod.Get, "/api/usage/stats"))
            {
                forbidden.Headers.Authorization = Bearer("student-7", "student");
                using var response = await http.SendAsync(forbidden);
                Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            }

            using (var anonymous = await http.GetAsync("/api/usage/stats"))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            }
        }
        finally
        {
            await postgres.DropDatabaseAsync(database);
            spool.Delete(recursive: true);
        }
    }

    /// <summary>The first C# block under the README's "## Quick start" heading.</summary>
    internal static string QuickStartBlock(string readme)
    {
        var section = readme.IndexOf("\n## Quick start", StringComparison.Ordinal);
        Assert.True(section >= 0, "README.md has no \"## Quick start\" section");
        var open = readme.IndexOf("```csharp\n", section, StringComparison.Ordinal);
        Assert.True(open >= 0, "the quick start section has no ```csharp block");
        var start = open + "```csharp\n".Length;
        var close = readme.IndexOf("\n```", start, StringComparison.Ordinal);
        Assert.True(close >= 0, "the quick start's code block is not closed");
        return readme[start..(close + 1)];
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd() + "\n";

    private static AuthenticationHeaderValue Bearer(string userId, string role)
    {
        var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Subject = new ClaimsIdentity([new Claim("sub", userId), new Claim("role", role)]),
            Expires = DateTime.UtcNow.AddMinutes(10),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(SigningKey), SecurityAlgorithms.HmacSha256),
        });
        return new AuthenticationHeaderValue("Bearer", token);
    }
}
