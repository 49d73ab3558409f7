using System.ClientModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.Tokenizers;
using OpenAI.Audio;
using OpenAI.Chat;
using OpenAI.Images;
using OpenAI.Moderations;
using OpenAI.Responses;
using TokenMeter.Attribution;
using TokenMeter.Metering;
using TokenMeter.Pricing;
using TokenMeter.Tests.Metering;
using TokenMeter.Testing.FakeOpenAI;

#pragma warning disable OPENAI001

namespace TokenMeter.Tests.Pricing;

/// <summary>
/// Every call kind through the real OpenAI SDK against the fake server, priced by the real price
/// table. Expected costs are written out from the list prices (US dollars per million tokens,
/// per image, per minute, per million characters) and compared to 1e-9 USD.
/// </summary>
public sealed class CallKindPricingTests
{
    private const decimal Million = 1_000_000m;
    private static readonly ChatMessage[] Hello = [new UserChatMessage("What is seven times six?")];

    [Fact]
    public async Task Chat_CacheWriteTokens_PricedAtCacheWritePrice()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Model = "gpt-5-2025-08-07", Usage = new FakeUsage { PromptTokens = 1000, CachedTokens = 200, CacheWriteTokens = 300, CompletionTokens = 50, ReasoningTokens = 20 } });

        await h.Metered().GetChatClient("gpt-5").CompleteChatAsync(Hello);

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((1000L, 200L, 300L, 50L), (record.InputTokens, record.CachedInputTokens, record.CacheWriteTokens, record.OutputTokens));

        // gpt-5: input 1.25, cached 0.125, cache write 1.25 × 1.25 = 1.5625, output 10.
        AssertCost((500 * 1.25m) + (200 * 0.125m) + (300 * 1.5625m) + (50 * 10m), record);
        Assert.Equal("gpt-5/standard/2025-08-07", record.PriceId);
        Assert.Equal(CostSource.Reported, record.CostSource);
    }

    [Fact]
    public async Task ChatStreaming_CacheWriteTokens_Recorded()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Usage = new FakeUsage { PromptTokens = 4000, CachedTokens = 1000, CacheWriteTokens = 2500, CompletionTokens = 100 } });

        await foreach (var _ in h.Metered().GetChatClient("gpt-4.1").CompleteChatStreamingAsync(Hello))
        {
        }

        var record = Assert.Single(h.Observer.Records);
        Assert.True(record.Streaming);
        Assert.Equal(2500, record.CacheWriteTokens);

        // gpt-4.1: input 2.00, cached 0.50, cache write 2.50, output 8.00.
        AssertCost((500 * 2.00m) + (1000 * 0.50m) + (2500 * 2.50m) + (100 * 8.00m), record);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Responses_CacheWriteTokens_Recorded(bool streaming)
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Usage = new FakeUsage { PromptTokens = 3000, CachedTokens = 1000, CacheWriteTokens = 1500, CompletionTokens = 400, ReasoningTokens = 100 } });
        var client = h.Metered().GetResponsesClient();

        if (streaming)
        {
            await foreach (var _ in await client.CreateResponseStreamingAsync("gpt-5-mini", "Hi"))
            {
            }
        }
        else
        {
            await client.CreateResponseAsync("gpt-5-mini", "Hi");
        }

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal((1000L, 1500L, 400L, 100L), (record.CachedInputTokens, record.CacheWriteTokens, record.OutputTokens, record.ReasoningTokens));

        // gpt-5-mini: input 0.25, cached 0.025, cache write 0.3125, output 2.00.
        AssertCost((500 * 0.25m) + (1000 * 0.025m) + (1500 * 0.3125m) + (400 * 2.00m), record);
    }

    [Fact]
    public async Task GptImage1_TextAndImageInputAndImageOutputTokens()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Usage = new FakeUsage { PromptTokens = 350, ImageInputTokens = 323, CompletionTokens = 4160 } });

        await h.Metered().GetImageClient("gpt-image-1").GenerateImageAsync("a cat");

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Ok, record.Status);

        // gpt-image-1: text input 5.00, image input 10.00, image output 40.00.
        AssertCost((27 * 5.00m) + (323 * 10.00m) + (4160 * 40.00m), record);
        Assert.Equal("gpt-image-1/standard/2025-04-23", record.PriceId);
    }

    [Fact]
    public async Task DallE_PricedPerImageBySizeAndQuality()
    {
        await using var h = await PricedHarness.StartAsync();
        var client = h.Metered();

        await client.GetImageClient("dall-e-2").GenerateImagesAsync("a dog", 3, new ImageGenerationOptions { Size = GeneratedImageSize.W256xH256 });
        await client.GetImageClient("dall-e-3").GenerateImageAsync("a fox", new ImageGenerationOptions { Size = GeneratedImageSize.W1024xH1792, Quality = GeneratedImageQuality.High });
        await client.GetImageClient("dall-e-3").GenerateImageAsync("an owl", new ImageGenerationOptions { Size = GeneratedImageSize.W1024xH1024, Quality = GeneratedImageQuality.Standard });

        var r = await h.Observer.WaitForAsync(3);
        Assert.All(r, x => Assert.Equal(UsageStatus.Ok, x.Status));
        Assert.All(r, x => Assert.Equal(CostSource.Reported, x.CostSource));
        Assert.Equal(3 * 0.016m, r[0].CostUsd);
        Assert.Equal(0.120m, r[1].CostUsd);
        Assert.Equal(0.040m, r[2].CostUsd);
        Assert.Equal("dall-e-3/standard/2023-11-06", r[1].PriceId);
    }

    [Fact]
    public async Task DallE3_SizeWithoutPrice_IsUnpricedNotZero()
    {
        await using var h = await PricedHarness.StartAsync();

        await h.Metered().GetImageClient("dall-e-3").GenerateImageAsync("a fox", new ImageGenerationOptions { Size = GeneratedImageSize.W256xH256 });

        var record = Assert.Single(h.Observer.Records);
        Assert.Null(record.CostUsd);
        Assert.Equal(CostSource.Unpriced, record.CostSource);
    }

    [Fact]
    public async Task Transcriptions_WhisperPerMinuteAndTranscribeTokens()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(
            new FakeReply { Usage = new FakeUsage { DurationSeconds = 12.5 } },
            new FakeReply { Usage = new FakeUsage { PromptTokens = 90, AudioPromptTokens = 80, CompletionTokens = 12 } });
        var client = h.Metered();

        using (var audio = new MemoryStream([1, 2, 3, 4]))
        {
            await client.GetAudioClient("whisper-1").TranscribeAudioAsync(audio, "a.wav");
        }

        using (var audio = new MemoryStream([1, 2, 3, 4]))
        {
            await client.GetAudioClient("gpt-4o-mini-transcribe").TranscribeAudioAsync(audio, "a.wav");
        }

        var r = await h.Observer.WaitForAsync(2);

        // whisper-1: 0.006 per minute of the reported duration.
        Assert.Equal(12.5m * 0.006m / 60m, r[0].CostUsd);
        Assert.Equal("whisper-1/standard/2023-03-01", r[0].PriceId);

        // gpt-4o-mini-transcribe: text input 1.25, audio input 3.00, output 5.00.
        AssertCost((10 * 1.25m) + (80 * 3.00m) + (12 * 5.00m), r[1]);
    }

    [Fact]
    public async Task Speech_Tts1PerCharacter_MiniTtsEstimatedTokens()
    {
        await using var h = await PricedHarness.StartAsync();
        var client = h.Metered();
        const string text = "Seven times six is forty-two. Héllo!";

        await client.GetAudioClient("tts-1").GenerateSpeechAsync(text, GeneratedSpeechVoice.Alloy);
        await client.GetAudioClient("tts-1-hd").GenerateSpeechAsync(text, GeneratedSpeechVoice.Alloy);
        await client.GetAudioClient("gpt-4o-mini-tts").GenerateSpeechAsync(text, GeneratedSpeechVoice.Alloy);

        var r = await h.Observer.WaitForAsync(3);
        Assert.All(r, x => Assert.Equal(UsageOperation.AudioSpeech, x.Operation));
        Assert.All(r, x => Assert.Equal(UsageStatus.Ok, x.Status));

        // tts-1: 15.00 and tts-1-hd: 30.00 per million characters of input.
        Assert.Equal(36 * 15.00m / Million, r[0].CostUsd);
        Assert.Equal(36 * 30.00m / Million, r[1].CostUsd);
        Assert.Equal(CostSource.Reported, r[0].CostSource);

        // gpt-4o-mini-tts is billed by tokens and the reply reports none: input counted by the tokenizer.
        var tokens = TiktokenTokenizer.CreateForModel("gpt-4o").CountTokens(text);
        Assert.Equal(tokens, r[2].InputTokens);
        Assert.Equal(CostSource.Estimated, r[2].CostSource);
        AssertCost(tokens * 0.60m, r[2]);
    }

    [Fact]
    public async Task Moderation_IsFree_RecordedWithZeroCostNotUnpriced()
    {
        await using var h = await PricedHarness.StartAsync();

        await h.Metered().GetModerationClient("omni-moderation-latest").ClassifyTextAsync("hello");

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageOperation.Moderation, record.Operation);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(0m, record.CostUsd);
        Assert.Equal(CostSource.Reported, record.CostSource);
        Assert.Equal("omni-moderation-latest/standard/2022-08-10", record.PriceId);
    }

    [Fact]
    public async Task ServiceTier_PricedAsServed_AndATierWithoutPriceIsFlagged()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(
            new FakeReply { ServiceTier = "default", Usage = new FakeUsage { PromptTokens = 1000, CompletionTokens = 100 } },
            new FakeReply { ServiceTier = "priority", Usage = new FakeUsage { PromptTokens = 1000, CompletionTokens = 100 } },
            new FakeReply { ServiceTier = "flex", Usage = new FakeUsage { PromptTokens = 1000, CompletionTokens = 100 } });
        var chat = h.Metered().GetChatClient("gpt-4o");

        // Asked for priority each time; the reply says how it was served.
        var options = new ChatCompletionOptions { ServiceTier = new ChatServiceTier("priority") };
        await chat.CompleteChatAsync(Hello, options);
        await chat.CompleteChatAsync(Hello, options);
        await chat.CompleteChatAsync(Hello, options);

        var r = await h.Observer.WaitForAsync(3);
        AssertCost((1000 * 2.50m) + (100 * 10.00m), r[0]);
        AssertCost((1000 * 4.25m) + (100 * 17.00m), r[1]);
        Assert.Null(r[2].CostUsd);
        Assert.Equal(CostSource.Unpriced, r[2].CostSource);
        Assert.Equal("flex", r[2].ServiceTier);
    }

    [Fact]
    public async Task CutStream_OutputIsTokenizerCountOfDeliveredText()
    {
        await using var h = await PricedHarness.StartAsync();
        const string answer = "Seven times six is forty two, and here is why it works out that way.";
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.CutStream, Text = answer, CutAfterChunks = 6 });
        var delivered = new System.Text.StringBuilder();

        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var update in h.Metered().GetChatClient("gpt-4o").CompleteChatStreamingAsync(Hello))
            {
                foreach (var part in update.ContentUpdate)
                {
                    delivered.Append(part.Text);
                }
            }
        });

        var record = Assert.Single(h.Observer.Records);
        var o200k = TiktokenTokenizer.CreateForModel("gpt-4o");

        // The first chunk carries the role; the next five carry the first five words.
        Assert.Equal("Seven times six is forty", delivered.ToString());
        Assert.Equal(o200k.CountTokens(delivered.ToString()), record.OutputTokens);
        Assert.True(record.InputTokens > 0);
        Assert.Equal(CostSource.Estimated, record.CostSource);
        Assert.Equal("input,output", record.Tags![BillingTags.Estimated]);
        AssertCost((record.InputTokens * 2.50m) + (record.OutputTokens * 10.00m), record);
    }

    [Fact]
    public async Task CutStream_Cl100kModel_CountedWithCl100k()
    {
        await using var h = await PricedHarness.StartAsync();
        const string answer = "Seven times six is forty two, and here is why it works out that way.";
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.CutStream, Text = answer, CutAfterChunks = 8 });

        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var _ in h.Metered().GetChatClient("gpt-4-turbo").CompleteChatStreamingAsync(Hello))
            {
            }
        });

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(TiktokenTokenizer.CreateForModel("gpt-4").CountTokens("Seven times six is forty two, and"), record.OutputTokens);
    }

    [Fact]
    public async Task BufferedReplyWithoutUsage_OutputEstimatedFromItsText()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.Enqueue(new FakeReply { Kind = FakeReplyKind.MissingUsage, Text = "Forty-two, because six sevens are forty-two." });

        await h.Metered().GetChatClient("gpt-4o-mini").CompleteChatAsync(Hello);

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(UsageStatus.Estimated, record.Status);
        Assert.Equal(TiktokenTokenizer.CreateForModel("gpt-4o").CountTokens("Forty-two, because six sevens are forty-two."), record.OutputTokens);
        Assert.Equal(CostSource.Estimated, record.CostSource);
        AssertCost((record.InputTokens * 0.15m) + (record.OutputTokens * 0.60m), record);
    }

    [Fact]
    public async Task UnknownModel_UnpricedWithNullCost()
    {
        await using var h = await PricedHarness.StartAsync();

        await h.Metered().GetChatClient("house-model-7").CompleteChatAsync(Hello);

        var record = Assert.Single(h.Observer.Records);
        Assert.Null(record.CostUsd);
        Assert.Null(record.PriceId);
        Assert.Equal(CostSource.Unpriced, record.CostSource);
    }

    [Fact]
    public async Task ConfiguredPrices_CacheWriteAndLongContext()
    {
        await using var h = await PricedHarness.StartAsync(new Dictionary<string, string?>
        {
            ["TokenMeter:Pricing:Models:0:Model"] = "house-model",
            ["TokenMeter:Pricing:Models:0:InputPerMillion"] = "1.00",
            ["TokenMeter:Pricing:Models:0:CachedInputPerMillion"] = "0.10",
            ["TokenMeter:Pricing:Models:0:CacheWritePerMillion"] = "1.50",
            ["TokenMeter:Pricing:Models:0:OutputPerMillion"] = "4.00",
            ["TokenMeter:Pricing:Models:0:LongContextAboveInputTokens"] = "200000",
            ["TokenMeter:Pricing:Models:0:LongContextInputPerMillion"] = "2.00",
            ["TokenMeter:Pricing:Models:0:LongContextOutputPerMillion"] = "6.00",
        });
        h.Server.Enqueue(
            new FakeReply { Usage = new FakeUsage { PromptTokens = 200_000, CachedTokens = 50_000, CacheWriteTokens = 10_000, CompletionTokens = 1000 } },
            new FakeReply { Usage = new FakeUsage { PromptTokens = 200_001, CachedTokens = 50_000, CacheWriteTokens = 10_000, CompletionTokens = 1000 } });
        var chat = h.Metered().GetChatClient("house-model");

        await chat.CompleteChatAsync(Hello);
        await chat.CompleteChatAsync(Hello);

        var r = await h.Observer.WaitForAsync(2);
        AssertCost((140_000 * 1.00m) + (50_000 * 0.10m) + (10_000 * 1.50m) + (1000 * 4.00m), r[0]);

        // Above 200,000 input tokens: long-context input 2.00 (cached at the input price, cache
        // writes at 1.25 × it when not set) and output 6.00.
        AssertCost((140_001 * 2.00m) + (50_000 * 2.00m) + (10_000 * 2.50m) + (1000 * 6.00m), r[1]);
        Assert.Equal("house-model/standard/0001-01-01", r[1].PriceId);
    }

    [Fact]
    public async Task CustomPriceSource_ReplacesTheTable()
    {
        await using var h = await PricedHarness.StartAsync(configure: s => s.AddSingleton<IPriceSource>(new NegotiatedPrices()));
        h.Server.Enqueue(FakeReply.WithUsage(1_000_000, 1_000_000));

        await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello);

        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(2.50m * 0.8m + (10.00m * 0.8m), record.CostUsd);
        Assert.Equal("gpt-4o/standard/2024-08-06", record.PriceId);
    }

    [Fact]
    public async Task BatchOutputFile_EachLineRecordedAtTheBatchTier_DownloadedTwiceCountedOnce()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.AddFile("file-batch-out", FakeOpenAIServer.BatchOutputFile(
            ("user-7/hint-1", "gpt-4o-mini-2024-07-18", new FakeUsage { PromptTokens = 1000, CachedTokens = 200, CompletionTokens = 300 }),
            ("user-8/hint-2", "gpt-4o", new FakeUsage { PromptTokens = 2000, CompletionTokens = 500 })));
        var files = h.Metered().GetOpenAIFileClient();

        using (UsageScope.Begin(new UsageContext { UserId = "batch-owner", Endpoint = "/jobs/nightly" }))
        {
            await files.DownloadFileAsync("file-batch-out");
        }

        var r = await h.Observer.WaitForAsync(2);
        Assert.All(r, x => Assert.Equal("batch", x.ServiceTier));
        Assert.All(r, x => Assert.Equal(UsageOperation.Chat, x.Operation));
        Assert.All(r, x => Assert.Equal(("batch-owner", "/jobs/nightly"), (x.UserId, x.Endpoint)));
        Assert.Equal(["user-7/hint-1", "user-8/hint-2"], r.Select(x => x.Tags![BillingTags.BatchCustomId]));

        // Batch: half the standard prices. gpt-4o-mini 0.075 / 0.0375 cached / 0.30; gpt-4o 1.25 / 5.00.
        AssertCost((800 * 0.075m) + (200 * 0.0375m) + (300 * 0.30m), r[0]);
        AssertCost((2000 * 1.25m) + (500 * 5.00m), r[1]);
        Assert.Equal("gpt-4o/batch/2024-08-06", r[1].PriceId);

        // The same file downloaded again makes the same record ids: a store keeps each request once.
        await files.DownloadFileAsync("file-batch-out");
        var again = await h.Observer.WaitForAsync(4);
        Assert.Equal(r.Select(x => (x.Id, x.CreatedAt)), again.Skip(2).Select(x => (x.Id, x.CreatedAt)));
    }

    [Fact]
    public async Task BatchOutputFile_AttributedByCustomId()
    {
        await using var h = await PricedHarness.StartAsync(configure: s => s.AddSingleton<IBatchAttribution>(new ByCustomId()));
        h.Server.AddFile("file-out", FakeOpenAIServer.BatchOutputFile(("user-7/hint-1", "gpt-4o-mini", new FakeUsage { PromptTokens = 10, CompletionTokens = 5 })));

        await h.Metered().GetOpenAIFileClient().DownloadFileAsync("file-out");

        var record = await h.Observer.NextAsync();
        Assert.Equal(("user-7", "hint-1"), (record.UserId, record.ProblemId));
    }

    [Fact]
    public async Task OtherFileDownload_RecordsNothing()
    {
        await using var h = await PricedHarness.StartAsync();
        h.Server.AddFile("file-notes", "just some notes\nnot a batch\n");

        await h.Metered().GetOpenAIFileClient().DownloadFileAsync("file-notes");
        h.Server.Enqueue(FakeReply.WithUsage(1, 1));
        await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync(Hello);

        // Only the chat call: the notes file made no record.
        var record = await h.Observer.NextAsync();
        Assert.Equal(UsageOperation.Chat, record.Operation);
        Assert.Single(h.Observer.Records);
    }

    private static void AssertCost(decimal perMillionSum, UsageRecord record)
    {
        Assert.NotNull(record.CostUsd);
        Assert.True(Math.Abs((perMillionSum / Million) - record.CostUsd!.Value) < 0.000000001m, $"expected {perMillionSum / Million}, got {record.CostUsd}");
    }

    /// <summary>Custom ids written <c>user/problem</c> by the app that built the batch.</summary>
    private sealed class ByCustomId : IBatchAttribution
    {
        public UsageContext? Attribute(string customId, UsageContext? downloadScope) =>
            customId.Split('/') is [var user, var problem] ? new UsageContext { UserId = user, ProblemId = problem } : null;
    }

    /// <summary>A negotiated 20% discount on the list prices.</summary>
    private sealed class NegotiatedPrices : IPriceSource
    {
        public ModelPrice? FindPrice(string model, PriceTier tier, DateTimeOffset at) =>
            PriceTable.Default.FindPrice(model, tier, at) is { } list
                ? list with { InputPerMillion = list.InputPerMillion * 0.8m, OutputPerMillion = list.OutputPerMillion * 0.8m }
                : null;
    }
}

/// <summary>The metering harness with the real price table (and optional configuration) instead of the flat test price.</summary>
internal static class PricedHarness
{
    public static Task<MeteringHarness> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configure = null) =>
        MeteringHarness.StartAsync(services =>
        {
            services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings ?? []).Build());
            services.AddSingleton<IUsagePricer>(sp => new UsagePricer(sp.GetRequiredService<IPriceSource>()));
            configure?.Invoke(services);
        });
}
