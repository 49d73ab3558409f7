using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Tests.Metering;

public sealed class MetricsTests
{
    [Fact]
    public async Task MeteredCall_EmitsTokenUsageCostAndCalls()
    {
        await using var h = await MeteringHarness.StartAsync();
        var meterFactory = h.Services.GetRequiredService<IMeterFactory>();
        using var tokens = new MetricCollector<int>(meterFactory, TokenMeterDiagnostics.MeterName, "gen_ai.client.token.usage");
        using var cost = new MetricCollector<double>(meterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.cost");
        using var calls = new MetricCollector<long>(meterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.calls");
        using var unpriced = new MetricCollector<long>(meterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.calls.unpriced");
        h.Server.Enqueue(new FakeReply { Model = "gpt-4o-2024-08-06", Usage = new FakeUsage { PromptTokens = 300, CompletionTokens = 50 } }, FakeReply.Error(503), new FakeReply { Model = "unpriced-model" });
        var chat = h.Metered().GetChatClient("gpt-4o");

        using (UsageScope.Begin(new UsageContext { Endpoint = "/api/hint" }))
        {
            await chat.CompleteChatAsync([new UserChatMessage("hi")]);
        }

        await Assert.ThrowsAnyAsync<Exception>(() => chat.CompleteChatAsync([new UserChatMessage("hi")]));
        await chat.CompleteChatAsync([new UserChatMessage("hi")]);

        var input = tokens.GetMeasurementSnapshot().First(m => (string?)m.Tags["gen_ai.token.type"] == "input");
        Assert.Equal(300, input.Value);
        Assert.Equal("chat", input.Tags["gen_ai.operation.name"]);
        Assert.Equal("openai", input.Tags["gen_ai.provider.name"]);
        Assert.Equal("gpt-4o", input.Tags["gen_ai.request.model"]);
        Assert.Equal("gpt-4o-2024-08-06", input.Tags["gen_ai.response.model"]);
        Assert.Equal("/api/hint", input.Tags["tokenmeter.endpoint"]);
        var output = tokens.GetMeasurementSnapshot().First(m => (string?)m.Tags["gen_ai.token.type"] == "output");
        Assert.Equal(50, output.Value);
        Assert.Equal(4, tokens.GetMeasurementSnapshot().Count); // two successful calls, the error emits none
        Assert.Equal("{token}", tokens.Instrument!.Unit);

        Assert.Equal((300 + 100) / 1000.0, cost.GetMeasurementSnapshot().First().Value, 10);
        Assert.Equal(1, unpriced.GetMeasurementSnapshot().Sum(m => m.Value));
        var byStatus = calls.GetMeasurementSnapshot().GroupBy(m => (string?)m.Tags["tokenmeter.status"]).ToDictionary(g => g.Key!, g => g.Sum(m => m.Value));
        Assert.Equal(2, byStatus["ok"]);
        Assert.Equal(1, byStatus["http_error"]);
    }

    [Fact]
    public async Task TokenUsageHistogram_CanBeSwitchedOff()
    {
        await using var h = await MeteringHarness.StartAsync(options: o => o.EmitTokenUsageHistogram = false);
        var meterFactory = h.Services.GetRequiredService<IMeterFactory>();
        using var tokens = new MetricCollector<int>(meterFactory, TokenMeterDiagnostics.MeterName, "gen_ai.client.token.usage");
        using var calls = new MetricCollector<long>(meterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.calls");

        await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Empty(tokens.GetMeasurementSnapshot());
        Assert.Single(calls.GetMeasurementSnapshot());
    }
}
