using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;

namespace HomeworkApi.Tests;

/// <summary>Registration throttled per address; sign-in per address and per account (guesses spread over addresses).</summary>
public sealed class AccountThrottleTests
{
    [Fact]
    public async Task Registration_IsThrottledPerAddress_429ProblemWithRetryAfter_OtherAddressesUnaffected()
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:RegistrationsPerHour"] = "3" });
        var address = RandomAddress();
        var statuses = new List<int>();
        HttpContext? last = null;
        for (var i = 0; i < 5; i++)
        {
            var name = "signup" + Guid.NewGuid().ToString("N")[..8];
            last = await PostFromAsync(app, address, "/api/auth/register", new { username = name, email = name + "@example.com", password = "quiet-harbour-lamp-47" });
            statuses.Add(last.Response.StatusCode);
        }

        var other = "signup" + Guid.NewGuid().ToString("N")[..8];
        var fromElsewhere = await PostFromAsync(app, RandomAddress(), "/api/auth/register", new { username = other, email = other + "@example.com", password = "quiet-harbour-lamp-47" });

        Assert.Equal([201, 201, 201, 429, 429], statuses);
        AssertRateLimitedProblem(last!);
        Assert.Equal(201, fromElsewhere.Response.StatusCode);
    }

    [Fact]
    public async Task SignIn_GuessesAtOneAccountFromManyAddresses_AreRefusedPerAccount_OtherAccountsUnaffected()
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:LoginAttemptsPerAccountPerMinute"] = "3" });
        await app.RegisterAsync("bystander", "quiet-harbour-lamp-47");
        var statuses = new List<int>();
        HttpContext? last = null;
        for (var i = 0; i < 5; i++)
        {
            // Each guess from a new address: the per-address limit never triggers.
            last = await PostFromAsync(app, RandomAddress(), "/api/auth/login", new { username = i % 2 == 0 ? "admin" : "ADMIN", password = "guess-number-" + i });
            statuses.Add(last.Response.StatusCode);
        }

        var rightPasswordNow = await PostFromAsync(app, RandomAddress(), "/api/auth/login", new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword });
        var otherAccount = await PostFromAsync(app, RandomAddress(), "/api/auth/login", new { username = "bystander", password = "quiet-harbour-lamp-47" });

        Assert.Equal([401, 401, 401, 429, 429], statuses);
        AssertRateLimitedProblem(last!);
        Assert.Equal(429, rightPasswordNow.Response.StatusCode);
        Assert.Equal(200, otherAccount.Response.StatusCode);
    }

    private static void AssertRateLimitedProblem(HttpContext refused)
    {
        Assert.Equal(429, refused.Response.StatusCode);
        Assert.True(int.Parse(refused.Response.Headers.RetryAfter.ToString(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.StartsWith("application/problem+json", refused.Response.ContentType, StringComparison.Ordinal);
        if (refused.Response.Body.CanSeek)
        {
            refused.Response.Body.Position = 0;
        }

        var problem = (JsonObject)JsonNode.Parse(refused.Response.Body)!;
        Assert.EndsWith("rate-limited", problem["type"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(problem["detail"]?.GetValue<string>()));
    }

    private static IPAddress RandomAddress() => new([10, (byte)Random.Shared.Next(256), (byte)Random.Shared.Next(256), (byte)Random.Shared.Next(1, 255)]);

    /// <summary>A JSON POST from <paramref name="address"/>: TestServer lets a test set the connection's remote address.</summary>
    private static Task<HttpContext> PostFromAsync(HomeworkApp app, IPAddress address, string path, object body)
    {
        var bytes = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(body));
        return app.Server.SendAsync(c =>
        {
            c.Connection.RemoteIpAddress = address;
            c.Request.Method = HttpMethods.Post;
            c.Request.Path = path;
            c.Request.ContentType = "application/json";
            c.Request.ContentLength = bytes.Length;
            c.Request.Body = new MemoryStream(bytes);
        });
    }
}
