using System.Diagnostics;
using System.Net;
using TokenMeter.Testing;
using TokenMeter.Testing.Scenarios;
using Xunit.Abstractions;

namespace TokenMeter.FaultTests;

/// <summary>
/// Budgets, rate limits and alerts hold across three instances of the sample (child processes)
/// sharing one PostgreSQL database and one fake model: docs/reliability.md "Several app instances".
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class MultiInstanceTests(PostgresServerFixture postgres, ITestOutputHelper output)
{
    private const decimal Cost = SampleCluster.CostPerCallUsd;

    [Fact]
    public async Task ThreeInstances_BudgetBurst_RequestsPerMinute_LimitChange_AndAKilledInstance()
    {
        await using var cluster = await SampleCluster.StartAsync(postgres.Server, 3, ClusterSettings.With(requestsPerMinute: 30, lease: TimeSpan.FromSeconds(3)), output.WriteLine);

        // 1. One student at 7.5 calls' worth, set through A; 60 parallel calls round-robin over A, B, C.
        using (var student = await cluster.RegisterAsync())
        {
            var limit = Cost * 7.5m;
            await cluster.SetBudgetAsync(0, student.UserId, limit);
            var before = cluster.Model.RequestCount;
            var answers = await Task.WhenAll(Enumerable.Range(0, 60).Select(student.HintAsync));
            var ok = answers.Count(a => a.Status == HttpStatusCode.OK);
            var budget = answers.Count(a => IsRefusal(a, "budget-exceeded"));
            var rate = answers.Count(a => IsRefusal(a, "rate-limited"));
            var stored = await cluster.WaitForStoredAsync(student.UserId, ok);
            output.WriteLine($"budget burst: {ok} allowed, {budget} refused for budget, {rate} for rate; stored {stored.Rows} records, {stored.SpendUsd} USD of {limit} USD");
            if (stored.SpendUsd > limit + Cost)
            {
                foreach (var instance in cluster.Instances)
                {
                    output.WriteLine(instance.Output);
                }
            }
            Assert.Equal(60, ok + budget + rate);
            Assert.True(budget > 0);
            Assert.True(stored.SpendUsd <= limit + Cost, $"spent {stored.SpendUsd} past {limit} + one call {Cost}");
            Assert.Equal(ok, cluster.Model.RequestCount - before);
            Assert.Equal(ok, stored.Rows);
            Assert.Equal(stored.Rows, stored.DistinctIds);
        }

        // 2. 30 requests per minute across the three: at most 30 of 90 parallel calls pass; another student is unaffected.
        using (var student = await cluster.RegisterAsync())
        using (var other = await cluster.RegisterAsync())
        {
            var before = cluster.Model.RequestCount;
            var answers = await Task.WhenAll(Enumerable.Range(0, 90).Select(student.HintAsync));
            var ok = answers.Count(a => a.Status == HttpStatusCode.OK);
            output.WriteLine($"requests per minute 30: {ok} of 90 allowed");
            Assert.InRange(ok, 1, 30);
            Assert.Equal(90 - ok, answers.Count(a => IsRefusal(a, "rate-limited")));
            var others = await Task.WhenAll(Enumerable.Range(0, 6).Select(other.HintAsync));
            Assert.All(others, a => Assert.Equal(HttpStatusCode.OK, a.Status));
            Assert.Equal(ok + 6, cluster.Model.RequestCount - before);
        }

        // 3. A limit lowered through B is enforced by C at once (B's change is announced with NOTIFY: C drops its slices of the student; a claim reads the limit in its own statement).
        using (var student = await cluster.RegisterAsync())
        {
            await cluster.SetBudgetAsync(0, student.UserId, 1m);
            Assert.Equal(HttpStatusCode.OK, (await student.HintAsync(2)).Status);
            Assert.Equal(HttpStatusCode.OK, (await student.HintAsync(2)).Status);
            await cluster.SetBudgetAsync(1, student.UserId, Cost);
            var lowered = Stopwatch.StartNew();
            var refused = await student.HintAsync(2);
            output.WriteLine($"limit lowered through B: C refused the next call {lowered.ElapsedMilliseconds} ms later");
            Assert.True(IsRefusal(refused, "budget-exceeded"), refused.Body);
        }

        // 4. C dies (SIGKILL) holding reservations: after the lease (a headroom slice's hold: its lifetime + the lease) the headroom is back; after a restart nothing counts twice.
        using (var student = await cluster.RegisterAsync())
        {
            await cluster.SetBudgetAsync(0, student.UserId, Cost * 4);
            cluster.ModelDelay = TimeSpan.FromSeconds(60);
            var before = cluster.Model.RequestCount;
            var hanging = Enumerable.Range(0, 6).Select(_ => student.HintAsync(2)).ToList();
            await Eventually.TrueAsync(() => cluster.Model.RequestCount - before >= 3, TimeSpan.FromSeconds(20), what: "calls on C reach the model");
            var held = await cluster.HoldsAsync(student.UserId);
            Assert.InRange(held, 3, 4);
            cluster.ModelDelay = TimeSpan.FromMilliseconds(20);
            var whileHeld = await student.HintAsync(0);
            Assert.True(IsRefusal(whileHeld, "budget-exceeded"), whileHeld.Body);

            var killed = Stopwatch.StartNew();
            cluster.Instances[2].Signal(SampleProcess.SigKill);
            await Task.WhenAll(hanging.Select(async h =>
            {
                try
                {
                    await h;
                }
                catch (HttpRequestException)
                {
                }
            }));

            await Eventually.TrueAsync(async _ => await cluster.HoldsAsync(student.UserId) == 0, TimeSpan.FromSeconds(20), what: "C's reservations lapse with the lease");
            var ok = 0;
            while ((await student.HintAsync(0)).Status == HttpStatusCode.OK)
            {
                ok++;
            }

            output.WriteLine($"killed C holding {held} reservations: headroom back {killed.ElapsedMilliseconds} ms later (lease 3 s, after the slice lifetime of 10 s), then {ok} calls allowed");
            Assert.InRange(ok, 3, 4);
            await cluster.RestartAsync(2);
            var stored = await cluster.WaitForStoredAsync(student.UserId, ok);
            Assert.Equal(ok, stored.Rows);
            Assert.Equal(stored.Rows, stored.DistinctIds);
            Assert.True(stored.SpendUsd <= Cost * 4);
        }
    }

    [Fact]
    public async Task ThreeInstances_TokensPerMinute_AdmitAtMostTheLimitPlusOneEstimate()
    {
        const long limit = 3000;
        await using var cluster = await SampleCluster.StartAsync(postgres.Server, 3, ClusterSettings.With(tokensPerMinute: limit), output.WriteLine);
        using var student = await cluster.RegisterAsync();

        var answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(student.HintAsync));

        var ok = answers.Count(a => a.Status == HttpStatusCode.OK);
        var stored = await cluster.WaitForStoredAsync(student.UserId, ok);
        output.WriteLine($"tokens per minute {limit}: {ok} of 30 allowed, {stored.Tokens} tokens stored (one hint's worst case is at most {BudgetBurstScenario.MaxEstimateTokens})");
        Assert.True(ok > 0);
        Assert.Equal(30 - ok, answers.Count(a => IsRefusal(a, "rate-limited")));
        Assert.True(stored.Tokens <= limit + BudgetBurstScenario.MaxEstimateTokens, $"{stored.Tokens} tokens admitted");
        Assert.Equal(ok, cluster.Model.RequestCount);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task PlatformDailyCost_CrossingCallsThenSilence_ExactlyOneWebhookWithinFiveSeconds(int instances)
    {
        await using var sink = await WebhookSink.StartAsync();
        await using var cluster = await SampleCluster.StartAsync(postgres.Server, instances, ClusterSettings.With(webhook: sink.Url, platformDailyCostUsd: Cost * 4.5m), output.WriteLine);
        using var student = await cluster.RegisterAsync();

        // Five calls, round-robin over the instances: together they cross 4.5 calls' worth, then nothing more comes.
        var answers = await Task.WhenAll(Enumerable.Range(0, 5).Select(student.HintAsync));
        var last = Stopwatch.StartNew();
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        try
        {
            await Eventually.TrueAsync(() => sink.Count("platform.daily_cost") >= 1, TimeSpan.FromSeconds(5), what: "platform.daily_cost within 5 s of the crossing calls");
        }
        catch (TimeoutException)
        {
            foreach (var instance in cluster.Instances)
            {
                output.WriteLine(instance.Output);
            }

            throw;
        }

        output.WriteLine($"{instances} instance(s): platform.daily_cost webhook {last.ElapsedMilliseconds} ms after the last call");

        // Each instance evaluates again after each of its flushes, all within this window; one webhook in all.
        while (last.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(100);
        }

        Assert.Equal(1, sink.Count("platform.daily_cost"));
    }

    private static bool IsRefusal((HttpStatusCode Status, string Body) answer, string type) =>
        answer.Status == HttpStatusCode.TooManyRequests && answer.Body.Contains(type, StringComparison.Ordinal);
}
