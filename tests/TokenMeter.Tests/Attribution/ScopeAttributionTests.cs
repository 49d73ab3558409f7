using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Tests.Metering;

namespace TokenMeter.Tests.Attribution;

public sealed class ScopeAttributionTests
{
    [Fact]
    public async Task ThousandConcurrentCalls_EachAttributedToItsOwnScope()
    {
        await using var h = await MeteringHarness.StartAsync();
        // The fake server reports as many prompt tokens as the number in the user's message + 1.
        h.Server.Responder = request =>
        {
            var text = request.Json!["messages"]![0]!["content"]!.GetValue<string>();
            return FakeReply.WithUsage(int.Parse(text.AsSpan("call ".Length), System.Globalization.CultureInfo.InvariantCulture) + 1, 1);
        };
        var chat = h.Metered().GetChatClient("gpt-4o-mini");
        var totals = new UsageTotals[1000];

        await Parallel.ForEachAsync(Enumerable.Range(0, 1000), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, _) =>
        {
            using var scope = UsageScope.Begin(new UsageContext
            {
                UserId = $"user-{i}",
                Endpoint = i % 2 == 0 ? "/api/hint" : "/api/analyze",
                SessionId = $"session-{i}",
                Tags = new Dictionary<string, string> { ["i"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            });
            await Task.Yield();
            await chat.CompleteChatAsync([new UserChatMessage($"call {i}")]);
            totals[i] = scope.Totals;
        });

        var records = h.Observer.Records;
        Assert.Equal(1000, records.Count);
        Assert.Equal(1000, records.Select(r => r.Id).Distinct().Count());
        foreach (var record in records)
        {
            var i = int.Parse(record.UserId!.AsSpan("user-".Length), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(i + 1, record.InputTokens);
            Assert.Equal($"session-{i}", record.SessionId);
            Assert.Equal(i % 2 == 0 ? "/api/hint" : "/api/analyze", record.Endpoint);
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), record.Tags!["i"]);
        }

        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(1, totals[i].Figures.Calls);
            Assert.Equal(i + 1, totals[i].Figures.InputTokens);
        }
    }

    [Fact]
    public async Task NestedScopes_RefineOuterAndRollUpTotals()
    {
        await using var h = await MeteringHarness.StartAsync();
        h.Server.DefaultReply = FakeReply.WithUsage(100, 10, cachedTokens: 40, reasoningTokens: 3);
        var chat = h.Metered().GetChatClient("gpt-4o");

        using var outer = UsageScope.Begin(new UsageContext { UserId = "42", Endpoint = "/api/analyze", Tags = new Dictionary<string, string> { ["grade"] = "7", ["subject"] = "math" } });
        await chat.CompleteChatAsync([new UserChatMessage("one")]);
        UsageTotals innerTotals;
        using (var inner = UsageScope.Begin(new UsageContext { ProblemId = "p-9", Tags = new Dictionary<string, string> { ["subject"] = "physics" } }))
        {
            await chat.CompleteChatAsync([new UserChatMessage("two")]);
            await Task.WhenAll(
                Task.Run(() => chat.CompleteChatAsync([new UserChatMessage("three")])),
                Task.Run(() => chat.CompleteChatAsync([new UserChatMessage("four")])));
            innerTotals = inner.Totals;
        }

        await chat.CompleteChatAsync([new UserChatMessage("five")]);

        var records = h.Observer.Records;
        Assert.Equal(5, records.Count);
        Assert.All(records, r => Assert.Equal(("42", "/api/analyze"), (r.UserId, r.Endpoint)));
        Assert.Equal(3, records.Count(r => r.ProblemId == "p-9"));
        Assert.All(records.Where(r => r.ProblemId == "p-9"), r => Assert.Equal(("7", "physics"), (r.Tags!["grade"], r.Tags!["subject"])));
        Assert.Equal("math", records[0].Tags!["subject"]);
        Assert.Null(records[^1].ProblemId);

        Assert.Equal(3, innerTotals.Figures.Calls);
        Assert.Equal(300, innerTotals.Figures.InputTokens);
        var all = outer.Totals;
        Assert.Equal(5, all.Figures.Calls);
        Assert.Equal(500, all.Figures.InputTokens);
        Assert.Equal(200, all.Figures.CachedInputTokens);
        Assert.Equal(50, all.Figures.OutputTokens);
        Assert.Equal(15, all.Figures.ReasoningTokens);
        Assert.Equal(550, all.Figures.TotalTokens);
        Assert.Equal(5 * ((100m + 20m) / 1000m), all.Figures.CostUsd);
        Assert.Equal("gpt-4o", all.Model);
    }

    [Fact]
    public async Task CallOutsideAnyScope_IsAnonymous_OrUsesRequestUser()
    {
        await using var h = await MeteringHarness.StartAsync();
        var chat = h.Metered().GetChatClient("gpt-4o");

        await chat.CompleteChatAsync([new UserChatMessage("anon")]);
        await chat.CompleteChatAsync([new UserChatMessage("named")], new ChatCompletionOptions { EndUserId = "end-user-5" });

        var records = h.Observer.Records;
        Assert.Null(records[0].UserId);
        Assert.Null(records[0].Endpoint);
        Assert.Equal("end-user-5", records[1].UserId);
    }

    [Fact]
    public async Task StreamingCall_IsAttributedToTheScopeItStartedIn()
    {
        await using var h = await MeteringHarness.StartAsync();
        var chat = h.Metered().GetChatClient("gpt-4o");
        IAsyncEnumerator<StreamingChatCompletionUpdate> updates;
        UsageScope scope;
        using (scope = UsageScope.Begin(new UsageContext { UserId = "streamer" }))
        {
            updates = chat.CompleteChatStreamingAsync([new UserChatMessage("hi")]).GetAsyncEnumerator();
            Assert.True(await updates.MoveNextAsync());
        }

        while (await updates.MoveNextAsync())
        {
        }

        await updates.DisposeAsync();
        var record = Assert.Single(h.Observer.Records);
        Assert.Equal(("streamer", UsageStatus.Ok), (record.UserId, record.Status));
        Assert.Equal(1, scope.Totals.Figures.Calls);
    }
}
