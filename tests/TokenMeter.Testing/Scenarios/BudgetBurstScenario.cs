using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Npgsql;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Testing.Scenarios;

/// <summary>What a budget-burst run saw.</summary>
public sealed record BudgetBurstOutcome(
    int Parallel,
    decimal LimitUsd,
    decimal CostPerCallUsd,
    IReadOnlyList<(int Ok, int Refused, int Other)> Rounds,
    IReadOnlyList<string> OtherStatuses,
    long ModelCalls,
    long Rows,
    decimal StoredSpendUsd)
{
    public int Ok => Rounds.Sum(r => r.Ok);

    public int Refused => Rounds.Sum(r => r.Refused);

    /// <summary>Stored spend beyond the limit (negative: under it).</summary>
    public decimal OverLimitUsd => StoredSpendUsd - LimitUsd;

    /// <summary>The promises this run broke; empty when it passed.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            var failures = new List<string>();
            if (Rounds.Any(r => r.Other != 0))
            {
                failures.Add($"answers other than 200 or 429: {string.Join("; ", OtherStatuses.Take(3))}");
            }

            if (OverLimitUsd > CostPerCallUsd)
            {
                failures.Add($"spent {StoredSpendUsd} USD, {OverLimitUsd} past the limit of {LimitUsd} (one call costs {CostPerCallUsd})");
            }

            if (StoredSpendUsd < LimitUsd - BudgetBurstScenario.MaxEstimateUsd)
            {
                failures.Add($"spent {StoredSpendUsd} USD, more than one call's worst case ({BudgetBurstScenario.MaxEstimateUsd} USD) under the limit of {LimitUsd}: calls refused too early");
            }

            if (Refused == 0)
            {
                failures.Add("no call was refused");
            }

            if (ModelCalls != Ok)
            {
                failures.Add($"{ModelCalls} model calls for {Ok} allowed calls (a refused call must not reach the model)");
            }

            if (Rows != Ok)
            {
                failures.Add($"{Rows} stored records for {Ok} allowed calls");
            }

            return failures;
        }
    }

    /// <summary>The lines the command prints (and a test shows when it fails).</summary>
    public IEnumerable<string> Report()
    {
        yield return $"{Rounds.Count - 1} bursts of {Parallel} parallel /api/hint calls for one student at a budget of {LimitUsd} USD ({CostPerCallUsd} USD a call), sample on PostgreSQL";
        for (var i = 0; i < Rounds.Count; i++)
        {
            var name = i == Rounds.Count - 1 ? "then one at a time until refused" : $"burst {i + 1}";
            yield return $"  {name}: {Rounds[i].Ok} allowed, {Rounds[i].Refused} refused (429), {Rounds[i].Other} other";
        }

        yield return $"model calls {ModelCalls}, stored records {Rows}, stored spend {StoredSpendUsd} USD, past the limit {OverLimitUsd} USD (bound: one call, {CostPerCallUsd} USD; refused at most one worst case, {BudgetBurstScenario.MaxEstimateUsd} USD, before it)";
        foreach (var f in Failures)
        {
            yield return "  FAILED: " + f;
        }

        yield return Failures.Count == 0 ? "PASS" : "FAIL";
    }
}

/// <summary>
/// Bursts of parallel calls for one student at a budget limit, through the real sample (child
/// process) on PostgreSQL with the budget set by the admin API: the spend may pass the limit by at
/// most one call's cost, and a refused call never reaches the model.
/// </summary>
public static class BudgetBurstScenario
{
    /// <summary>
    /// Usage the fake model reports per call: 100 input and 400 output tokens of gpt-4o-mini — the
    /// hint's full output cap, and fewer input tokens than its prompt has, so a call never costs
    /// more than the worst case the sample reserves for it.
    /// </summary>
    public static readonly FakeUsage Usage = new() { PromptTokens = 100, CompletionTokens = 400 };

    /// <summary>gpt-4o-mini at 0.15 / 0.60 USD per million tokens.</summary>
    public const decimal CostPerCallUsd = (100 * 0.15m / 1_000_000) + (400 * 0.60m / 1_000_000);

    /// <summary>An upper bound of the worst case the sample reserves for one hint: at most 1,000 prompt tokens (prompt, schema, framing) and its 400 output tokens.</summary>
    public const decimal MaxEstimateUsd = (1_000 * 0.15m / 1_000_000) + (400 * 0.60m / 1_000_000);

    /// <summary>The same bound in tokens.</summary>
    public const long MaxEstimateTokens = 1_000 + 400;

    public static async Task<BudgetBurstOutcome> RunAsync(PostgresServer server, int parallel, int rounds, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        var limit = CostPerCallUsd * 7.5m;
        var connectionString = await server.CreateDatabaseAsync("budget").ConfigureAwait(false);
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        try
        {
            await using var model = await FakeOpenAIServer.StartAsync().ConfigureAwait(false);
            model.Responder = request => HomeworkModel.Reply(request, TimeSpan.FromMilliseconds(20)) with { Usage = Usage };
            var settings = SampleProcess.Settings(connectionString, model.Endpoint, spool, TimeSpan.FromMilliseconds(100));
            await using var sample = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
            log?.Invoke($"sample pid {sample.Pid} on {sample.BaseAddress}");

            using var anonymous = SampleClient.Create(sample.BaseAddress, 16);
            var username = "burst" + Guid.NewGuid().ToString("N")[..8];
            string userId;
            using (var created = await anonymous.PostAsJsonAsync("/api/auth/register", new { username, email = username + "@example.com", password = "Load-harness-pupil-2026" }).ConfigureAwait(false))
            {
                created.EnsureSuccessStatusCode();
                userId = (await created.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false))!["id"]!.GetValue<string>();
            }

            var studentToken = await SampleClient.LoginAsync(anonymous, username, "Load-harness-pupil-2026").ConfigureAwait(false);
            var adminToken = await SampleClient.LoginAsync(anonymous, SampleProcess.AdminUsername, SampleProcess.AdminPassword).ConfigureAwait(false);
            using var admin = SampleClient.WithToken(sample.BaseAddress, adminToken);
            using var student = SampleClient.Create(sample.BaseAddress, parallel);
            student.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", studentToken);
            using (var put = await admin.PutAsJsonAsync($"/api/usage/budgets/{userId}", new { monthlyCostUsd = limit }).ConfigureAwait(false))
            {
                put.EnsureSuccessStatusCode();
            }

            var results = new List<(int, int, int)>();
            var others = new List<string>();
            async Task<(HttpStatusCode Status, string Body)> HintAsync()
            {
                using var content = new StringContent(SampleClient.HintBody, System.Text.Encoding.UTF8, "application/json");
                using var response = await student.PostAsync("/api/hint", content).ConfigureAwait(false);
                return (response.StatusCode, await response.Content.ReadAsStringAsync().ConfigureAwait(false));
            }

            void Count(IReadOnlyCollection<(HttpStatusCode Status, string Body)> answers, string name)
            {
                var ok = answers.Count(a => a.Status == HttpStatusCode.OK);
                var refused = answers.Count(IsBudgetRefusal);
                others.AddRange(answers.Where(a => a.Status != HttpStatusCode.OK && !IsBudgetRefusal(a)).Select(a => $"{(int)a.Status} {a.Body}"));
                results.Add((ok, refused, answers.Count - ok - refused));
                log?.Invoke($"{name}: {ok} allowed, {refused} refused");
            }

            for (var round = 0; round < rounds; round++)
            {
                Count(await Task.WhenAll(Enumerable.Range(0, parallel).Select(_ => HintAsync())).ConfigureAwait(false), $"burst {round + 1}");
            }

            // Then one call at a time until refused: with nothing in flight, a refusal means the
            // stored spend itself reached the limit (it was not undershot).
            var sequential = new List<(HttpStatusCode, string)>();
            for (var i = 0; i < 20; i++)
            {
                var answer = await HintAsync().ConfigureAwait(false);
                sequential.Add(answer);
                if (answer.Status != HttpStatusCode.OK)
                {
                    break;
                }
            }

            Count(sequential, "one at a time");

            var (rows, spend) = await WaitForRowsAsync(connectionString, userId, results.Sum(r => r.Item1)).ConfigureAwait(false);
            sample.Signal(SampleProcess.SigTerm);
            await sample.WaitForExitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            (rows, spend) = await SpendAsync(connectionString, userId).ConfigureAwait(false);
            return new BudgetBurstOutcome(parallel, limit, CostPerCallUsd, results, others, model.RequestCount, rows, spend);
        }
        finally
        {
            FaultScenarios.DeleteFolder(spool);
        }
    }

    /// <summary>429 with the budget's problem type (not, say, a rate limit's).</summary>
    private static bool IsBudgetRefusal((HttpStatusCode Status, string Body) answer) =>
        answer.Status == HttpStatusCode.TooManyRequests && answer.Body.Contains("budget-exceeded", StringComparison.Ordinal);

    private static async Task<(long Rows, decimal Spend)> WaitForRowsAsync(string connectionString, string userId, long expected)
    {
        var polled = await Eventually.PollAsync(_ => new ValueTask<(long Rows, decimal Spend)>(SpendAsync(connectionString, userId)), s => s.Rows >= expected, TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
        return polled.Value;
    }

    private static async Task<(long Rows, decimal Spend)> SpendAsync(string connectionString, string userId)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT count(*), coalesce(sum(cost_usd), 0) FROM user_api_usage WHERE user_id = @u", connection);
        command.Parameters.AddWithValue("u", userId);
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        await reader.ReadAsync().ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetDecimal(1));
    }

}
