using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using TokenMeter.Pricing;

namespace TokenMeter.Tests.Pricing;

public sealed class PriceTableTests
{
    private static readonly DateTimeOffset July2025 = new(2025, 7, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Sept2025 = new(2025, 9, 1, 12, 0, 0, TimeSpan.Zero);

    private static UsageRecord Record(string? model, long input, long cached, long output, long reasoning = 0, string? tier = null, DateTimeOffset? at = null, long audioIn = 0, long audioOut = 0) => new()
    {
        Id = Guid.CreateVersion7(),
        CreatedAt = at ?? Sept2025,
        Model = model,
        ServiceTier = tier,
        InputTokens = input,
        CachedInputTokens = cached,
        OutputTokens = output,
        ReasoningTokens = reasoning,
        AudioInputTokens = audioIn,
        AudioOutputTokens = audioOut,
        TotalTokens = input + output,
    };

    public static TheoryData<string, string?, long, long, long, string, string> StandardCases => new()
    {
        // model, service tier, input, cached, output, expected cost, expected price id
        { "gpt-4o", null, 1_000_000, 0, 1_000_000, "12.50", "gpt-4o/standard/2024-08-06" },
        { "gpt-4o", "default", 1000, 400, 500, "0.007", "gpt-4o/standard/2024-08-06" },
        { "gpt-4o-2024-08-06", null, 1000, 400, 500, "0.007", "gpt-4o/standard/2024-08-06" },
        { "gpt-4o-mini", null, 1234, 0, 567, "0.0005253", "gpt-4o-mini/standard/2024-07-18" },
        { "gpt-4o-mini-2024-07-18", null, 10_000, 5_000, 1_000, "0.001725", "gpt-4o-mini/standard/2024-07-18" },
        { "gpt-4.1", null, 1_000_000, 500_000, 0, "1.25", "gpt-4.1/standard/2025-04-14" },
        { "gpt-4.1-mini", null, 3, 1, 7, "0.0000121", "gpt-4.1-mini/standard/2025-04-14" },
        { "gpt-4.1-nano", null, 1_000_000, 1_000_000, 1_000_000, "0.425", "gpt-4.1-nano/standard/2025-04-14" },
        { "o3", null, 1000, 0, 1000, "0.010", "o3/standard/2025-06-10" },
        { "o4-mini", null, 2000, 1000, 100, "0.001815", "o4-mini/standard/2025-04-16" },
        { "gpt-5", null, 1000, 200, 3000, "0.031025", "gpt-5/standard/2025-08-07" },
        { "gpt-5-mini", null, 1_000_000, 0, 1_000_000, "2.25", "gpt-5-mini/standard/2025-08-07" },
        { "gpt-5-nano", null, 1_000_000, 100_000, 10_000, "0.0495", "gpt-5-nano/standard/2025-08-07" },
        { "text-embedding-3-small", null, 1_000_000, 0, 0, "0.02", "text-embedding-3-small/standard/2024-01-25" },
        { "text-embedding-3-large", null, 12_345, 0, 0, "0.00160485", "text-embedding-3-large/standard/2024-01-25" },
        { "text-embedding-ada-002", null, 1000, 0, 0, "0.0001", "text-embedding-ada-002/standard/2022-12-15" },
        { "GPT-4O", null, 1_000_000, 0, 0, "2.50", "gpt-4o/standard/2024-08-06" },
    };

    [Theory]
    [MemberData(nameof(StandardCases))]
    public void Price_KnownModel_ExactDecimalCost(string model, string? tier, long input, long cached, long output, string expected, string priceId)
    {
        var priced = PriceTable.Default.Price(Record(model, input, cached, output, tier: tier));

        Assert.Equal(decimal.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), priced.CostUsd);
        Assert.Equal(priceId, priced.PriceId);
    }

    public static TheoryData<string, string, long, long, long, string, string> TierCases => new()
    {
        { "gpt-4o", "batch", 1_000_000, 0, 1_000_000, "6.25", "gpt-4o/batch/2024-08-06" },
        { "gpt-4o-mini", "batch", 1_000_000, 1_000_000, 0, "0.0375", "gpt-4o-mini/batch/2024-07-18" },
        { "o3", "flex", 1_000_000, 200_000, 1_000_000, "4.85", "o3/flex/2025-06-10" },
        { "o4-mini", "flex", 1_000_000, 0, 1_000_000, "2.75", "o4-mini/flex/2025-04-16" },
        { "gpt-5", "flex", 1_000_000, 1_000_000, 1_000_000, "5.0625", "gpt-5/flex/2025-08-07" },
        { "gpt-5-mini", "FLEX", 1_000_000, 0, 1_000_000, "1.125", "gpt-5-mini/flex/2025-08-07" },
        { "gpt-4o", "priority", 1_000_000, 0, 1_000_000, "21.25", "gpt-4o/priority/2024-08-06" },
        { "gpt-4o-mini", "priority", 1_000_000, 500_000, 0, "0.1875", "gpt-4o-mini/priority/2024-07-18" },
        { "gpt-4.1", "priority", 1_000_000, 0, 1_000_000, "17.50", "gpt-4.1/priority/2025-04-14" },
        { "o3", "priority", 1_000_000, 0, 0, "3.50", "o3/priority/2025-06-10" },
        { "o4-mini", "priority", 0, 0, 1_000_000, "8.00", "o4-mini/priority/2025-04-16" },
        { "gpt-5", "priority", 1_000_000, 1_000_000, 1_000_000, "20.25", "gpt-5/priority/2025-08-07" },
        { "gpt-5-mini", "priority", 1_000_000, 0, 1_000_000, "4.05", "gpt-5-mini/priority/2025-08-07" },
        { "gpt-4o", "auto", 1_000_000, 0, 0, "2.50", "gpt-4o/standard/2024-08-06" },
    };

    [Theory]
    [MemberData(nameof(TierCases))]
    public void Price_ServiceTier_UsesTierPrice(string model, string tier, long input, long cached, long output, string expected, string priceId)
    {
        var priced = PriceTable.Default.Price(Record(model, input, cached, output, tier: tier));

        Assert.Equal(decimal.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), priced.CostUsd);
        Assert.Equal(priceId, priced.PriceId);
    }

    [Theory]
    [InlineData("gpt-4.1", "flex")]
    [InlineData("gpt-4o", "scale")]
    [InlineData("text-embedding-3-small", "priority")]
    public void Price_TierTheModelHasNoPriceOn_IsFlaggedUnpricedNotPricedAtStandard(string model, string tier)
    {
        var priced = PriceTable.Default.Price(Record(model, 1_000_000, 0, 1_000_000, tier: tier));

        Assert.Null(priced.CostUsd);
        Assert.Null(priced.PriceId);
        Assert.Equal(CostSource.Unpriced, priced.CostSource);
    }

    [Fact]
    public void Price_O3BeforeAndAfterPriceCut_UsesPriceInEffect()
    {
        var before = PriceTable.Default.Price(Record("o3", 1_000_000, 0, 1_000_000, at: new DateTimeOffset(2025, 6, 9, 23, 59, 59, TimeSpan.Zero)));
        var after = PriceTable.Default.Price(Record("o3-2025-04-16", 1_000_000, 0, 1_000_000, at: new DateTimeOffset(2025, 6, 10, 0, 0, 0, TimeSpan.Zero)));
        var batchBefore = PriceTable.Default.Price(Record("o3", 1_000_000, 0, 0, tier: "batch", at: new DateTimeOffset(2025, 5, 1, 0, 0, 0, TimeSpan.Zero)));

        Assert.Equal(50.00m, before.CostUsd);
        Assert.Equal("o3/standard/2025-04-16", before.PriceId);
        Assert.Equal(10.00m, after.CostUsd);
        Assert.Equal("o3/standard/2025-06-10", after.PriceId);
        Assert.Equal(5.00m, batchBefore.CostUsd);
        Assert.Equal("o3/batch/2025-04-16", batchBefore.PriceId);
    }

    [Fact]
    public void Price_ReasoningTokens_AreInsideOutputAndNotAddedAgain()
    {
        var priced = PriceTable.Default.Price(Record("o4-mini", 1000, 0, 5000, reasoning: 4000));

        // 1000 × 1.10 + 5000 × 4.40 per million: reasoning is already inside the 5000.
        Assert.Equal(0.0231m, priced.CostUsd);
    }

    [Fact]
    public void Price_EmbeddingWithCachedTokens_FallsBackToInputPrice()
    {
        var priced = PriceTable.Default.Price(Record("text-embedding-3-small", 1_000_000, 500_000, 0));

        Assert.Equal(0.02m, priced.CostUsd);
    }

    [Fact]
    public void Price_AudioTokens_UseAudioPrices()
    {
        // 100 text tokens × 2.50 + 1000 audio tokens × 6.00 + 50 output × 10.00 per million.
        var priced = PriceTable.Default.Price(Record("gpt-4o-transcribe", 1100, 0, 50, audioIn: 1000));

        Assert.Equal(0.00675m, priced.CostUsd);
        Assert.Equal("gpt-4o-transcribe/standard/2025-03-20", priced.PriceId);
    }

    [Fact]
    public void Price_ModelWithoutAudioPrice_ChargesAudioAsText()
    {
        var priced = PriceTable.Default.Price(Record("gpt-4o", 1_000_000, 0, 0, audioIn: 400_000));

        Assert.Equal(2.50m, priced.CostUsd);
    }

    [Theory]
    [InlineData("gpt-4o-mini-2099-01-01", "gpt-4o-mini/standard/2024-07-18")]
    [InlineData("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano/standard/2025-04-14")]
    [InlineData("gpt-4o-mini", "gpt-4o-mini/standard/2024-07-18")]
    public void Find_DatedSnapshot_ResolvesToOwnFamilyOnly(string model, string priceId)
    {
        Assert.Equal(priceId, PriceTable.Default.Find(model, PriceTier.Standard, Sept2025)?.Id);
    }

    [Theory]
    [InlineData("my-fine-tune")]
    [InlineData("gpt-4o-super")]
    [InlineData("")]
    [InlineData(null)]
    public void Price_UnknownModel_NullCostAndNoPriceId(string? model)
    {
        var priced = PriceTable.Default.Price(Record(model, 1000, 0, 1000) with { CostUsd = 1m, PriceId = "stale" });

        Assert.Null(priced.CostUsd);
        Assert.Null(priced.PriceId);
    }

    [Fact]
    public void Price_SnapshotWithOwnPrice_WinsOverFamily()
    {
        var table = PriceTable.Default.With([new ModelPrice("gpt-4o-2024-05-13", PriceTier.Standard, new DateOnly(2024, 5, 13), 5.00m, null, 15.00m)]);

        var priced = table.Price(Record("gpt-4o-2024-05-13", 1_000_000, 0, 1_000_000));

        Assert.Equal(20.00m, priced.CostUsd);
        Assert.Equal("gpt-4o-2024-05-13/standard/2024-05-13", priced.PriceId);
    }

    [Fact]
    public void Price_FallsBackToRequestModel_WhenReplyHasNone()
    {
        var priced = PriceTable.Default.Price(Record(null, 1_000_000, 0, 0) with { RequestModel = "gpt-4.1" });

        Assert.Equal(2.00m, priced.CostUsd);
    }

    [Fact]
    public void Default_HasBatchPriceForEveryStandardPrice()
    {
        // Text, embedding and transcription models: the Batch API does not take images or speech.
        var standard = PriceTable.Default.Prices
            .Where(p => p.Tier == PriceTier.Standard && p.PerImage is null && p.PerMinute is null && p.PerMillionCharacters is null && p.ImageInputPerMillion is null && p.Model != "gpt-4o-mini-tts")
            .ToList();
        foreach (var p in standard)
        {
            var batch = PriceTable.Default.Prices.Single(b => b.Tier == PriceTier.Batch && b.Model == p.Model && b.EffectiveFrom == p.EffectiveFrom);
            Assert.Equal(p.InputPerMillion / 2, batch.InputPerMillion);
            Assert.Equal(p.OutputPerMillion / 2, batch.OutputPerMillion);
        }

        Assert.Equal(2, standard.Count(p => p.Model == "o3"));
    }

    [Fact]
    public void Configuration_OverridesAndExtendsDefaults()
    {
        var table = BuildTable(new Dictionary<string, string?>
        {
            ["TokenMeter:Pricing:Models:0:Model"] = "gpt-4o",
            ["TokenMeter:Pricing:Models:0:EffectiveFrom"] = "2026-01-01",
            ["TokenMeter:Pricing:Models:0:InputPerMillion"] = "2.00",
            ["TokenMeter:Pricing:Models:0:CachedInputPerMillion"] = "1.00",
            ["TokenMeter:Pricing:Models:0:OutputPerMillion"] = "8.00",
            ["TokenMeter:Pricing:Models:1:Model"] = "my-fine-tune",
            ["TokenMeter:Pricing:Models:1:Tier"] = "flex",
            ["TokenMeter:Pricing:Models:1:InputPerMillion"] = "0.3",
            ["TokenMeter:Pricing:Models:1:OutputPerMillion"] = "1.2",
        });

        // The old price still applies to older calls: a new price never rewrites history.
        Assert.Equal(12.50m, table.Price(Record("gpt-4o", 1_000_000, 0, 1_000_000, at: new DateTimeOffset(2025, 12, 31, 23, 0, 0, TimeSpan.Zero))).CostUsd);
        var newer = table.Price(Record("gpt-4o", 1_000_000, 0, 1_000_000, at: new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        Assert.Equal(10.00m, newer.CostUsd);
        Assert.Equal("gpt-4o/standard/2026-01-01", newer.PriceId);
        var custom = table.Price(Record("my-fine-tune", 1_000_000, 0, 1_000_000, tier: "flex"));
        Assert.Equal(1.5m, custom.CostUsd);
        Assert.Equal("my-fine-tune/flex/0001-01-01", custom.PriceId);
    }

    [Fact]
    public void Configuration_WithoutDefaults_OnlyConfiguredPrices()
    {
        var table = BuildTable(new Dictionary<string, string?>
        {
            ["TokenMeter:Pricing:IncludeDefaults"] = "false",
            ["TokenMeter:Pricing:Models:0:Model"] = "house-model",
            ["TokenMeter:Pricing:Models:0:InputPerMillion"] = "1",
            ["TokenMeter:Pricing:Models:0:OutputPerMillion"] = "2",
        });

        Assert.Single(table.Prices);
        Assert.Null(table.Price(Record("gpt-4o", 1, 0, 1)).CostUsd);
    }

    [Theory]
    [InlineData("InputPerMillion", "-1", "InputPerMillion")]
    [InlineData("Model", "", "Model")]
    public async Task Configuration_InvalidPrice_FailsAtStartNamingTheKey(string key, string value, string expectedInMessage)
    {
        var settings = new Dictionary<string, string?>
        {
            ["TokenMeter:Pricing:Models:0:Model"] = "x",
            ["TokenMeter:Pricing:Models:0:InputPerMillion"] = "1",
            ["TokenMeter:Pricing:Models:0:OutputPerMillion"] = "1",
        };
        settings["TokenMeter:Pricing:Models:0:" + key] = value;
        using var host = BuildHost(settings);

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("TokenMeter:Pricing:Models:0:" + expectedInMessage, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pricer_UnknownModel_WarnsOncePerModel()
    {
        var logger = new FakeLogger<UsagePricer>();
        var pricer = new UsagePricer(PriceTable.Default, logger);

        pricer.Price(Record("mystery-1", 1, 0, 1));
        pricer.Price(Record("mystery-1", 1, 0, 1));
        pricer.Price(Record("mystery-2", 1, 0, 1));
        var priced = pricer.Price(Record("gpt-4o", 1_000_000, 0, 0));

        var warnings = logger.Collector.GetSnapshot().Where(r => r.Level == LogLevel.Warning).ToList();
        Assert.Equal(2, warnings.Count);
        Assert.Contains("mystery-1", warnings[0].Message, StringComparison.Ordinal);
        Assert.Contains("mystery-2", warnings[1].Message, StringComparison.Ordinal);
        Assert.Equal(2.50m, priced.CostUsd);
    }

    [Fact]
    public void AddTokenMeter_RegistersPricerOverConfiguredTable()
    {
        using var host = BuildHost(new Dictionary<string, string?>
        {
            ["TokenMeter:Pricing:Models:0:Model"] = "house-model",
            ["TokenMeter:Pricing:Models:0:InputPerMillion"] = "3",
            ["TokenMeter:Pricing:Models:0:OutputPerMillion"] = "0",
        });

        var pricer = host.Services.GetRequiredService<IUsagePricer>();

        Assert.Equal(3m, pricer.Price(Record("house-model", 1_000_000, 0, 0)).CostUsd);
        Assert.Same(host.Services.GetRequiredService<PriceTable>(), host.Services.GetRequiredService<PriceTable>());
    }

    private static PriceTable BuildTable(Dictionary<string, string?> settings)
    {
        using var host = BuildHost(settings);
        return host.Services.GetRequiredService<PriceTable>();
    }

    private static IHost BuildHost(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddTokenMeter();
        return builder.Build();
    }
}
