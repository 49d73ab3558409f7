using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using TokenMeter.AspNetCore.Tests.Forecasting;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Testing.Smtp;

namespace TokenMeter.AspNetCore.Tests.Reports;

public sealed class ReportEndpointTests
{
    [Fact]
    public async Task SendNow_Daily_202_AndTheMailsNumbersEqualTheApis()
    {
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = await TestApp.StartAsync(configure: b => b.Configuration.AddInMemoryCollection(ExtrasRouteAuthorizationTests.SmtpSettings(smtp.Port)));
        var yesterday = TestApp.Now.AddDays(-1);
        await app.SeedAsync(
            TestApp.Record("u1", 0.0123m, 1200, "/api/analyze", "gpt-4o", yesterday),
            TestApp.Record("u1", 0.0004m, 300, "/api/hint", "gpt-4o-mini", yesterday),
            TestApp.Record("u2", 0.002m, 800, "/api/chat", "gpt-4o-mini", yesterday),
            TestApp.Record(null, 0.001m, 100, "/api/chat", "gpt-4o-mini", yesterday),
            TestApp.Record("u2", 0.5m, 100, "/api/chat", "gpt-4o-mini", yesterday.AddDays(-1)));

        using var response = await app.Admin().PostAsJsonAsync("/api/usage/reports/send", new { period = "daily" });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("2026-11-24", accepted.GetProperty("from").GetString());
        Assert.Equal(1, accepted.GetProperty("recipients").GetInt32());

        var message = await smtp.NextAsync();
        Assert.Equal("TokenMeter daily usage report: 2026-11-24", message.Subject);

        var daily = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/daily?days=3");
        var day = daily.GetProperty("items").EnumerateArray().Single(d => d.GetProperty("date").GetString() == "2026-11-24");
        var before = daily.GetProperty("items").EnumerateArray().Single(d => d.GetProperty("date").GetString() == "2026-11-23");
        Assert.Contains($"Calls:  {day.GetProperty("calls").GetInt64()} (previous {before.GetProperty("calls").GetInt64()},", message.TextBody, StringComparison.Ordinal);
        Assert.Contains($"Tokens: {day.GetProperty("totalTokens").GetInt64():#,0} (previous {before.GetProperty("totalTokens").GetInt64():#,0},", message.TextBody, StringComparison.Ordinal);
        Assert.Contains($"Cost:   ${day.GetProperty("costUsd").GetDecimal().ToString("#,0.00######", CultureInfo.InvariantCulture)} (previous ${before.GetProperty("costUsd").GetDecimal().ToString("#,0.00######", CultureInfo.InvariantCulture)},", message.TextBody, StringComparison.Ordinal);

        var forecast = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast");
        Assert.Contains($"Forecast for 2026-11: ${forecast.GetProperty("projectedMonthCostUsd").GetDecimal().ToString("#,0.00######", CultureInfo.InvariantCulture)}", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("#u1: 2 calls, 1,500 tokens, $0.0127", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("$0.0157", message.HtmlBody, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"period\":\"yearly\"}")]
    [InlineData("{\"period\":\"Daily\"}")]
    [InlineData("{\"period\":1}")]
    [InlineData("{}")]
    [InlineData("[\"daily\"]")]
    [InlineData("{\"period\":")]
    [InlineData("")]
    public async Task SendNow_BadBody_400ProblemDetails(string body)
    {
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = await TestApp.StartAsync(configure: b => b.Configuration.AddInMemoryCollection(ExtrasRouteAuthorizationTests.SmtpSettings(smtp.Port)));

        using var response = await app.Admin().PostAsync("/api/usage/reports/send", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, smtp.Drain());
    }

    [Fact]
    public async Task SendNow_MailNotConfigured_409ProblemDetails()
    {
        await using var app = await TestApp.StartAsync();

        using var response = await app.Admin().PostAsJsonAsync("/api/usage/reports/send", new { period = "weekly" });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("TokenMeter:Reports:Smtp:Host", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
