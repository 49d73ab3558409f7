using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Tests.Metering;

/// <summary>The whole default path: metered SDK call → real pricer → writer → in-memory store.</summary>
public sealed class EndToEndTests
{
    [Fact]
    public async Task AddTokenMeter_MeteredCalls_ArePricedAndReachTheStore()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:OpenAI:Endpoint"] = server.Endpoint.ToString(),
            ["TokenMeter:OpenAI:ApiKey"] = "sk-e2e",
            ["TokenMeter:OpenAI:MaxRetries"] = "0",
        });
        builder.Services.AddTokenMeter().AddOpenAIClient();
        using var host = builder.Build();
        await host.StartAsync();
        var client = host.Services.GetRequiredService<OpenAIClient>();
        server.Enqueue(
            new FakeReply { Model = "gpt-4o-mini-2024-07-18", Usage = new FakeUsage { PromptTokens = 1_000_000, CompletionTokens = 1_000_000, CachedTokens = 200_000 } },
            FakeReply.WithUsage(100, 50),
            FakeReply.Error(500));

        UsageTotals totals;
        using (var scope = UsageScope.Begin(new UsageContext { UserId = "77", Endpoint = "/api/hint", ProblemId = "p-1" }))
        {
            await client.GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("hint please")]);
            await foreach (var _ in client.GetChatClient("gpt-4o-mini").CompleteChatStreamingAsync([new UserChatMessage("more")]))
            {
            }

            await Assert.ThrowsAnyAsync<Exception>(() => client.GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("fail")]));
            totals = scope.Totals;
        }

        await host.StopAsync(); // drains the writer

        var store = host.Services.GetRequiredService<IUsageQueries>();
        var stored = new List<UsageRecord>();
        await foreach (var record in store.ExportAsync(new UsageExportQuery(UserId: "77")))
        {
            stored.Add(record);
        }

        Assert.Equal(3, stored.Count);
        Assert.All(stored, r => Assert.Equal(("77", "/api/hint", "p-1"), (r.UserId, r.Endpoint, r.ProblemId)));
        var first = stored.Single(r => r.InputTokens == 1_000_000);
        // (1M − 200k) × $0.15/M + 200k × $0.075/M + 1M × $0.60/M
        Assert.Equal(0.12m + 0.015m + 0.60m, first.CostUsd);
        Assert.NotNull(first.PriceId);
        Assert.Contains(stored, r => r.Status == UsageStatus.Ok && r.Streaming && r.InputTokens == 100);
        Assert.Contains(stored, r => r.Status == UsageStatus.HttpError && r.HttpStatus == 500);
        Assert.Equal(3, totals.Figures.Calls);
        Assert.Equal(stored.Sum(r => r.CostUsd ?? 0m), totals.Figures.CostUsd);
    }
}
