using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Metering;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Tests.Metering;

public sealed class RegistrationTests
{
    [Fact]
    public async Task AddOpenAIClient_BindsConfigurationAndMetersEveryClient()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        var observer = new CollectingObserver();
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:OpenAI:Endpoint"] = server.Endpoint.ToString(),
            ["TokenMeter:OpenAI:ApiKey"] = "sk-from-config",
            ["TokenMeter:OpenAI:MaxRetries"] = "1",
        });
        builder.Services.AddSingleton<IUsageObserver>(observer);
        builder.Services.AddTokenMeter().AddOpenAIClient();
        using var host = builder.Build();
        await host.StartAsync();

        var client = host.Services.GetRequiredService<OpenAIClient>();
        Assert.Same(client, host.Services.GetRequiredService<OpenAIClient>());
        server.Enqueue(FakeReply.Error(429, TimeSpan.FromMilliseconds(1)), FakeReply.WithUsage(5, 2));
        using (UsageScope.Begin(new UsageContext { UserId = "7" }))
        {
            await client.GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("hi")]);
            await client.GetEmbeddingClient("text-embedding-3-small").GenerateEmbeddingAsync("hi");
        }

        Assert.Equal("Bearer sk-from-config", server.Requests[0].Headers["Authorization"]);
        Assert.Equal(3, server.RequestCount);
        var records = observer.Records;
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal("7", r.UserId));
        Assert.Equal((5L, 2L), (records[0].InputTokens, records[0].OutputTokens));
        await host.StopAsync();
    }

    [Fact]
    public async Task AddOpenAIClient_DelegateOverridesConfiguration()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:OpenAI:Endpoint"] = "http://127.0.0.1:1/v1",
            ["TokenMeter:OpenAI:ApiKey"] = "sk-config",
        }).Build());
        services.AddTokenMeter().AddOpenAIClient(o =>
        {
            o.Endpoint = server.Endpoint;
            o.ApiKey = "sk-delegate";
        });
        await using var sp = services.BuildServiceProvider();

        await sp.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o").CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Equal("Bearer sk-delegate", server.Requests[0].Headers["Authorization"]);
    }

    [Theory]
    [InlineData(null, "2", "TokenMeter:OpenAI:ApiKey")]
    [InlineData("sk", "11", "TokenMeter:OpenAI:MaxRetries")]
    public async Task AddOpenAIClient_BadOptions_FailStartNamingTheKey(string? apiKey, string maxRetries, string key)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:OpenAI:ApiKey"] = apiKey,
            ["TokenMeter:OpenAI:MaxRetries"] = maxRetries,
        });
        builder.Services.AddTokenMeter().AddOpenAIClient();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(key, error.Message);
        Assert.DoesNotContain("sk-", error.Message);
    }

    [Fact]
    public async Task OpenAIClientOptionsAddTokenMeter_WithoutAddTokenMeter_ExplainsWhat()
    {
        await using var sp = new ServiceCollection().BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() => new OpenAIClientOptions().AddTokenMeter(sp));

        Assert.Contains("AddTokenMeter", error.Message);
    }

    [Fact]
    public async Task ManualRecorder_PricesAttributesAndObserves()
    {
        await using var h = await MeteringHarness.StartAsync();
        var recorder = h.Services.GetRequiredService<IUsageRecorder>();

        UsageRecord record;
        UsageTotals totals;
        using (var scope = UsageScope.Begin(new UsageContext { UserId = "9", Endpoint = "/batch" }))
        {
            record = await recorder.RecordAsync(new ManualUsage { Model = "gpt-4.1", InputTokens = 1000, CachedInputTokens = 200, OutputTokens = 500, Context = new UsageContext { ProblemId = "p1" } });
            totals = scope.Totals;
        }

        Assert.Equal(("9", "/batch", "p1"), (record.UserId, record.Endpoint, record.ProblemId));
        Assert.Equal(("gpt-4.1", 1500L, UsageStatus.Ok), (record.Model, record.TotalTokens, record.Status));
        Assert.Equal(2m, record.CostUsd);
        Assert.Same(record, Assert.Single(h.Observer.Records));
        Assert.Equal(1, totals.Figures.Calls);
        Assert.Equal(2m, totals.Figures.CostUsd);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await recorder.RecordAsync(new ManualUsage { Model = "m", InputTokens = -1 }));
    }
}
