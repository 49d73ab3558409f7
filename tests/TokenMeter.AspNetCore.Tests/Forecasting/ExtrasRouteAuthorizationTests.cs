using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.Configuration;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Testing.Smtp;

namespace TokenMeter.AspNetCore.Tests.Forecasting;

/// <summary>Every route of contract §9: no token → 401, a student → 403, an admin → 200 (202 for sending a report).</summary>
public sealed class ExtrasRouteAuthorizationTests
{
    private static readonly (string Method, string Path)[] Routes =
    [
        ("GET", "/api/usage/forecast"),
        ("GET", "/api/usage/forecast/users"),
        ("GET", "/api/usage/statements?month=2026-11"),
        ("GET", "/api/usage/statements/export?month=2026-11"),
        ("POST", "/api/usage/reports/send"),
    ];

    [Fact]
    public async Task EveryRoute_NoTokenWrongRoleAdmin_401_403_Success()
    {
        // One app for every route keeps the test quick; each route is checked on its own below.
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = await TestApp.StartAsync(configure: b => b.Configuration.AddInMemoryCollection(SmtpSettings(smtp.Port)));
        await app.SeedAsync(TestApp.Record("u1", 0.5m));
        foreach (var (method, path) in Routes)
        {
            await CheckAsync(app, smtp, method, path);
        }
    }

    private static async Task CheckAsync(TestApp app, LoopbackSmtpServer smtp, string method, string path)
    {
        using var anonymous = await SendAsync(app.As(null), method, path);
        Assert.True(anonymous.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path} anonymous: {anonymous.StatusCode}");

        using var student = await SendAsync(app.As("s1", "student"), method, path);
        Assert.True(student.StatusCode == HttpStatusCode.Forbidden, $"{method} {path} student: {student.StatusCode}");

        using var admin = await SendAsync(app.Admin(), method, path);
        Assert.True((method == "POST" ? HttpStatusCode.Accepted : HttpStatusCode.OK) == admin.StatusCode, $"{method} {path}: {admin.StatusCode}");
        if (method == "POST")
        {
            Assert.Equal("TokenMeter daily usage report: 2026-11-24", (await smtp.NextAsync()).Subject);
        }
    }

    internal static Dictionary<string, string?> SmtpSettings(int port) => new()
    {
        ["TokenMeter:Reports:Smtp:Host"] = "127.0.0.1",
        ["TokenMeter:Reports:Smtp:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["TokenMeter:Reports:Smtp:UseTls"] = "false",
        ["TokenMeter:Reports:Smtp:From"] = "reports@example.test",
        ["TokenMeter:Reports:To:0"] = "ops@example.test",
    };

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string method, string path)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST")
        {
            request.Content = JsonContent.Create(new { period = "daily" });
        }

        return client.SendAsync(request);
    }
}
