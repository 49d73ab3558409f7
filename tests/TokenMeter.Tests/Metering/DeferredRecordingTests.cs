using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using OpenAI.Chat;
using OpenAI.Images;
using TokenMeter.Attribution;
using TokenMeter.Metering;
using TokenMeter.Pricing;
using TokenMeter.Querying;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Writing;

namespace TokenMeter.Tests.Metering;

/// <summary>
/// With no <see cref="IUsageObserver"/> registered, a call's record is built, priced, counted and
/// logged off the caller's thread (by the writer, or by the first reader of its scope's totals):
/// the same record is stored, scope totals are exact the moment the call returns, nothing is lost.
/// </summary>
public sealed class DeferredRecordingTests
{
    [Fact]
    public async Task Plain_NoObserver_ScopeTotalsExactAtOnce_StoredRecordAsWithAnObserver()
    {
        await using var h = await MeteringHarness.StartAsync(observe: false);
        Assert.True(h.Services.GetRequiredService<UsageMeter>().CanDefer);
        h.Server.Enqueue(new FakeReply { Model = "gpt-4o-mini-2024-07-18", Usage = new FakeUsage { PromptTokens = 300, CompletionTokens = 50, CachedTokens = 100 } });
        var writer = h.Services.GetRequiredService<UsageWriter>();
        await writer.StartAsync(default);

        using (var scope = UsageScope.Begin(new UsageContext { UserId = "u1", Endpoint = "/api/hint", Tags = new Dictionary<string, string> { ["k"] = "v" } }))
        {
            await h.Metered().GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("hi")]);

            // Read before the writer has taken the call (its flush interval is a second away).
            var totals = scope.Totals;
            Assert.Equal(1, totals.Figures.Calls);
            Assert.Equal(300, totals.Figures.InputTokens);
            Assert.Equal(100, totals.Figures.CachedInputTokens);
            Assert.Equal(50, totals.Figures.OutputTokens);
            Assert.Equal((300m + 100m) / 1000m, totals.Figures.CostUsd);
            Assert.Equal("gpt-4o-mini-2024-07-18", totals.Model);
        }

        await writer.StopAsync(default);
        var record = Assert.Single(await StoredAsync(h));
        Assert.Equal("u1", record.UserId);
        Assert.Equal("/api/hint", record.Endpoint);
        Assert.Equal("v", record.Tags!["k"]);
        Assert.Equal(UsageOperation.Chat, record.Operation);
        Assert.Equal("gpt-4o-mini", record.RequestModel);
        Assert.Equal("gpt-4o-mini-2024-07-18", record.Model);
        Assert.Equal((300, 100, 50, 350), (record.InputTokens, record.CachedInputTokens, record.OutputTokens, record.TotalTokens));
        Assert.Equal((300m + 100m) / 1000m, record.CostUsd);
        Assert.Equal("test/flat", record.PriceId);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(200, record.HttpStatus);
        Assert.False(record.Streaming);
        Assert.True(record.DurationMs > 0);
    }

    [Fact]
    public async Task Stream_NoObserver_StoredWithItsUsage_ScopeTotalsExact()
    {
        await using var h = await MeteringHarness.StartAsync(observe: false);
        var writer = h.Services.GetRequiredService<UsageWriter>();
        await writer.StartAsync(default);
        using (var scope = UsageScope.Begin(new UsageContext { UserId = "u2" }))
        {
            await foreach (var _ in h.Metered().GetChatClient("gpt-4o").CompleteChatStreamingAsync([new UserChatMessage("hi")]))
            {
            }

            Assert.Equal(1, scope.Totals.Figures.Calls);
            Assert.Equal(FakeUsage.Default.PromptTokens + FakeUsage.Default.CompletionTokens, scope.Totals.Figures.TotalTokens);
        }

        await writer.StopAsync(default);
        var record = Assert.Single(await StoredAsync(h));
        Assert.True(record.Streaming);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal(FakeUsage.Default.PromptTokens, record.InputTokens);
        Assert.Equal(FakeUsage.Default.CompletionTokens, record.OutputTokens);
    }

    [Fact]
    public async Task NoUsageAndErrors_NoObserver_StoredAsWithAnObserver()
    {
        // The same three replies through a meter with an observer (records built on the caller's
        // thread) and through one without (built by the writer): the same records come out.
        FakeReply[] replies = [new FakeReply { Kind = FakeReplyKind.MissingUsage }, FakeReply.Error(503), new FakeReply { Kind = FakeReplyKind.MissingUsage }];
        await using var observed = await MeteringHarness.StartAsync();
        observed.Server.Enqueue(replies);
        await CallsAsync(observed);
        var expected = observed.Observer.Records;

        await using var h = await MeteringHarness.StartAsync(observe: false);
        h.Server.Enqueue(replies);
        var records = await StoredInOrderAsync(h, CallsAsync);

        Assert.Equal(3, records.Count);
        Assert.Equal(UsageStatus.Estimated, records[2].Status);
        // The stream delivered text before it ended without usage: both sides are estimated.
        Assert.Equal("input,output", records[2].Tags!["tokenmeter.estimated"]);
        Assert.True(records[2].OutputTokens > 0);
        Assert.Equal(UsageStatus.HttpError, records[1].Status);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(
                (expected[i].Status, expected[i].HttpStatus, expected[i].InputTokens, expected[i].OutputTokens, expected[i].TotalTokens, expected[i].CostUsd, expected[i].CostSource, expected[i].Streaming),
                (records[i].Status, records[i].HttpStatus, records[i].InputTokens, records[i].OutputTokens, records[i].TotalTokens, records[i].CostUsd, records[i].CostSource, records[i].Streaming));
            Assert.Equal(expected[i].Tags?.GetValueOrDefault("tokenmeter.estimated"), records[i].Tags?.GetValueOrDefault("tokenmeter.estimated"));
        }

        static async Task CallsAsync(MeteringHarness harness)
        {
            var chat = harness.Metered().GetChatClient("gpt-4o");
            await chat.CompleteChatAsync([new UserChatMessage("A buffered reply without usage.")]);
            await Assert.ThrowsAnyAsync<Exception>(() => chat.CompleteChatAsync([new UserChatMessage("hi")]));
            await foreach (var _ in chat.CompleteChatStreamingAsync([new UserChatMessage("Estimate the tokens of this question, please.")]))
            {
            }
        }
    }

    [Fact]
    public async Task RequestFields_NoObserver_ReadWhenBuilt_SameAsWithAnObserver()
    {
        // Without an observer a request body's fields are read when the record is built; the records
        // match those of a meter that read them at once, and a stream still gets its usage asked for.
        await using var observed = await MeteringHarness.StartAsync();
        await CallsAsync(observed);
        var expected = observed.Observer.Records;

        await using var h = await MeteringHarness.StartAsync(observe: false);
        var records = await StoredInOrderAsync(h, CallsAsync);

        Assert.Equal(5, records.Count);
        Assert.Equal("learner-7", records[0].UserId);
        Assert.Equal(("gpt-4o-mini", UsageStatus.Ok), (records[3].RequestModel, records[3].Status));
        Assert.True(h.Server.Requests[3].Json!["stream_options"]!["include_usage"]!.GetValue<bool>());

        // The SDK's own streaming request ends with the stream_options asking for usage: read later too.
        Assert.True(RequestInfo.IsSentAsIs(System.Text.Encoding.UTF8.GetBytes(h.Server.Requests[1].Body)));
        Assert.False(RequestInfo.IsSentAsIs("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[]}"u8));
        Assert.False(RequestInfo.IsSentAsIs("{\"stream\":true,\"stream_options\":null}"u8));
        Assert.True(RequestInfo.IsSentAsIs("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"a \\\"stream\\\" of words\"}]}"u8));
        Assert.Equal("1024x1024", records[4].Tags![BillingTags.ImageSize]);
        for (var i = 0; i < records.Count; i++)
        {
            Assert.Equal(
                (expected[i].Operation, expected[i].RequestModel, expected[i].UserId, expected[i].Status, expected[i].InputTokens, expected[i].OutputTokens, expected[i].CostUsd, expected[i].Streaming),
                (records[i].Operation, records[i].RequestModel, records[i].UserId, records[i].Status, records[i].InputTokens, records[i].OutputTokens, records[i].CostUsd, records[i].Streaming));
            Assert.Equal(expected[i].Tags?.OrderBy(t => t.Key), records[i].Tags?.OrderBy(t => t.Key));
        }

        static async Task CallsAsync(MeteringHarness harness)
        {
            var client = harness.Metered();
            var chat = client.GetChatClient("gpt-4o");
            await chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { EndUserId = "learner-7" });
            await foreach (var _ in chat.CompleteChatStreamingAsync([new UserChatMessage("hi")]))
            {
            }

            await client.GetEmbeddingClient("text-embedding-3-small").GenerateEmbeddingAsync("hello");

            // A protocol stream without stream_options: read at once, to add them.
            var body = BinaryContent.Create(BinaryData.FromString("""{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));
            var result = await client.GetChatClient("gpt-4o-mini").CompleteChatAsync(body, new RequestOptions { BufferResponse = false });
            using (var reader = new StreamReader(result.GetRawResponse().ContentStream!))
            {
                await reader.ReadToEndAsync();
            }

            await client.GetImageClient("dall-e-3").GenerateImageAsync("a cat", new ImageGenerationOptions { Size = GeneratedImageSize.W1024xH1024, Quality = GeneratedImageQuality.Standard });
        }
    }

    [Fact]
    public async Task ManyCalls_NoObserver_NoneLost_LongLivedScopeStaysExact()
    {
        await using var h = await MeteringHarness.StartAsync(observe: false);
        var meterFactory = h.Services.GetRequiredService<IMeterFactory>();
        using var calls = new MetricCollector<long>(meterFactory, "TokenMeter", "tokenmeter.calls");
        var writer = h.Services.GetRequiredService<UsageWriter>();
        await writer.StartAsync(default);
        var chat = h.Metered().GetChatClient("gpt-4o");
        const int Calls = 300;
        using (var scope = UsageScope.Begin(new UsageContext { UserId = "u3" }))
        {
            // More calls than a scope keeps unbuilt, from parallel callers; the totals are read once, at the end.
            await Parallel.ForAsync(0, Calls, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (_, ct) => await chat.CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: ct));
            Assert.Equal(Calls, scope.Totals.Figures.Calls);
            Assert.Equal(Calls * (long)(FakeUsage.Default.PromptTokens + FakeUsage.Default.CompletionTokens), scope.Totals.Figures.TotalTokens);
        }

        await writer.StopAsync(default);
        var stored = await StoredAsync(h);
        Assert.Equal(Calls, stored.Count);
        Assert.Equal(Calls, stored.Select(r => r.Id).Distinct().Count());

        // Metrics are counted when the writer builds the records.
        Assert.Equal(Calls, calls.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Fact]
    public async Task NestedScopes_TheWriterAddsTheCallsItBuiltToEveryScope_TotalsExact()
    {
        // No flush before the writer is stopped: (most of) the calls stay queued and pending until then.
        await using var h = await MeteringHarness.StartAsync(observe: false, configure: s => s.Configure<UsageWriterOptions>(o => o.FlushInterval = TimeSpan.FromMinutes(10)));
        var writer = h.Services.GetRequiredService<UsageWriter>();
        await writer.StartAsync(default);
        var chat = h.Metered().GetChatClient("gpt-4o");
        const int Calls = 10;
        using var outer = UsageScope.Begin(new UsageContext { UserId = "u5" });
        using (var inner = UsageScope.Begin(new UsageContext { Endpoint = "/api/hint" }))
        {
            for (var i = 0; i < Calls; i++)
            {
                await chat.CompleteChatAsync([new UserChatMessage("hi")]);
            }

            // Stopping stores the queue: the writer builds the calls and adds them to both scopes'
            // totals (fewer than the 64 pending calls at which adding a call folds them itself).
            await writer.StopAsync(default);
            Assert.Equal((0, 0), (inner.PendingCount, outer.PendingCount));
            Assert.Equal(Calls, inner.Totals.Figures.Calls);
            Assert.Equal(Calls * (long)(FakeUsage.Default.PromptTokens + FakeUsage.Default.CompletionTokens), inner.Totals.Figures.TotalTokens);
        }

        Assert.Equal(Calls, outer.Totals.Figures.Calls);
        Assert.Equal(Calls * (long)(FakeUsage.Default.PromptTokens + FakeUsage.Default.CompletionTokens), outer.Totals.Figures.TotalTokens);
        Assert.Equal(Calls, (await StoredAsync(h)).Count);
    }

    [Fact]
    public async Task BuiltLater_RecordKeepsTheTimeTheCallStarted()
    {
        var started = new DateTimeOffset(2026, 3, 31, 23, 59, 59, TimeSpan.Zero);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(started);
        await using var h = await MeteringHarness.StartAsync(observe: false, configure: s => s.AddSingleton<TimeProvider>(time));
        var writer = h.Services.GetRequiredService<UsageWriter>();
        await writer.StartAsync(default);
        await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync([new UserChatMessage("hi")]);

        // The record is built once the writer takes the call: a day (and a month) later on its clock.
        time.Advance(TimeSpan.FromDays(1));
        await writer.StopAsync(default);

        var record = Assert.Single(await StoredAsync(h));
        Assert.Equal(started, record.CreatedAt);
        Assert.Equal(0, record.DurationMs);
    }

    [Fact]
    public async Task WithAnObserver_RecordsAreBuiltOnTheCallersThread()
    {
        await using var h = await MeteringHarness.StartAsync();
        Assert.False(h.Services.GetRequiredService<UsageMeter>().CanDefer);
        await h.Metered().GetChatClient("gpt-4o").CompleteChatAsync([new UserChatMessage("hi")]);
        Assert.Single(h.Observer.Records);
    }

    [Fact]
    public async Task WriterBehind_CallsAreBuiltOnTheCallersThreadAgain_NoneLost()
    {
        // A writer that is not running: its queue only grows, as it would behind a starved writer.
        await using var h = await MeteringHarness.StartAsync(observe: false, configure: s => s.Configure<UsageWriterOptions>(o => o.BatchSize = 2));
        var meter = h.Services.GetRequiredService<UsageMeter>();
        var writer = h.Services.GetRequiredService<UsageWriter>();
        var chat = h.Metered().GetChatClient("gpt-4o");
        for (var i = 0; i < 5; i++)
        {
            await chat.CompleteChatAsync([new UserChatMessage("hi")]);
        }

        Assert.True(writer.IsBacklogged);
        Assert.False(meter.DefersRecording);
        Assert.True(meter.CanDefer);

        await writer.StartAsync(default);
        await writer.StopAsync(default);
        var stored = await StoredAsync(h);
        Assert.Equal(5, stored.Count);
        Assert.All(stored, r => Assert.Equal(UsageStatus.Ok, r.Status));
        Assert.False(writer.IsBacklogged);
        Assert.True(meter.DefersRecording);
    }

    // Runs the calls with the writer running, stops it (storing everything), and returns the records in call order.
    private static async Task<List<UsageRecord>> StoredInOrderAsync(MeteringHarness h, Func<MeteringHarness, Task> calls)
    {
        var writer = h.Services.GetRequiredService<UsageWriter>();
        await writer.StartAsync(default);
        await calls(h);
        await writer.StopAsync(default);
        return [.. (await StoredAsync(h)).OrderBy(r => r.CreatedAt)];
    }

    private static async Task<List<UsageRecord>> StoredAsync(MeteringHarness h)
    {
        var records = new List<UsageRecord>();
        await foreach (var record in h.Services.GetRequiredService<IUsageQueries>().ExportAsync(new UsageExportQuery()))
        {
            records.Add(record);
        }

        return records;
    }
}
