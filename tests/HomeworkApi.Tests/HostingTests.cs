using System.Net;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace HomeworkApi.Tests;

/// <summary>What an operator sees: the start-up log says where the pages are, and /health covers TokenMeter.</summary>
public sealed class HostingTests
{
    [Fact]
    public async Task Health_ReportsTokenMeterWriterAndStoreChecksByName_WithoutTheirData()
    {
        await using var app = new HomeworkApp();
        using var client = app.CreateClient();

        using var response = await client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        Assert.Equal("Healthy", body["status"]!.GetValue<string>());
        Assert.Equal("Healthy", body["checks"]!["tokenmeter-writer"]!.GetValue<string>());
        Assert.Equal("Healthy", body["checks"]!["tokenmeter-store"]!.GetValue<string>());
        Assert.DoesNotContain("spool", body.ToJsonString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Startup_LogsTheUrlsOfThePortalAndTheStudentsPage()
    {
        var logs = new FakeLogCollector();
        await using var app = new HomeworkApp
        {
            TestServices = services =>
            {
                services.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs));
                services.PostConfigure<LoggerFilterOptions>(o => o.Rules.Add(new LoggerFilterRule(typeof(FakeLoggerProvider).FullName, null, LogLevel.Information, null)));
            },
        };

        var address = ChromiumFixture.StartOnLoopback(app);

        var root = address.ToString().TrimEnd('/');
        var line = Assert.Single(logs.GetSnapshot(), r => r.Message.StartsWith("Admin portal: ", StringComparison.Ordinal));
        Assert.Equal($"Admin portal: {root}/admin (admin sign-in); students' page: {root}/usage", line.Message);
        Assert.Contains(logs.GetSnapshot(), r => r.Message.StartsWith("Usage writer started; durable spool at ", StringComparison.Ordinal));
    }
}
