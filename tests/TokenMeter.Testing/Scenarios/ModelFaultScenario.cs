using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Querying;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Testing.Scenarios;

/// <summary>What the fake model does to one scripted call.</summary>
public enum ModelFault
{
    /// <summary>A normal reply with usage.</summary>
    None,

    /// <summary>HTTP 500 with an OpenAI error body.</summary>
    ServerError,

    /// <summary>HTTP 429 with retry-after.</summary>
    RateLimited,

    /// <summary>200 with a body that is not JSON (plain calls only).</summary>
    MalformedJson,

    /// <summary>A success without usage (no usage object; a stream without its usage chunk).</summary>
    NoUsage,

    /// <summary>A stream cut after two events (streaming calls only).</summary>
    CutStream,
}

/// <summary>One scripted call: what the model does, and whether the caller streams.</summary>
public sealed record ModelFaultCase(int Index, ModelFault Fault, bool Stream)
{
    /// <summary>The status metering must record for this call.</summary>
    public UsageStatus ExpectedStatus => Fault switch
    {
        ModelFault.None => UsageStatus.Ok,
        ModelFault.ServerError or ModelFault.RateLimited => UsageStatus.HttpError,
        ModelFault.MalformedJson => UsageStatus.UsageMissing,

        // A reply without usage (streamed or buffered) is estimated with the tokenizer: the prompt and the text delivered.
        ModelFault.NoUsage => UsageStatus.Estimated,
        ModelFault.CutStream => UsageStatus.TransportError,
        _ => throw new InvalidOperationException(Fault.ToString()),
    };

    /// <summary>The HTTP status metering must record (null when no reply arrived).</summary>
    public int? ExpectedHttpStatus => Fault switch
    {
        ModelFault.ServerError => 500,
        ModelFault.RateLimited => 429,
        _ => 200,
    };

    public override string ToString() => $"#{Index} {Fault}{(Stream ? " stream" : string.Empty)}";
}

/// <summary>What a model-fault run saw: per case, the metered caller's outcome, the unmetered caller's, and the record.</summary>
public sealed record ModelFaultOutcome(
    int Callers,
    IReadOnlyList<ModelFaultCase> Cases,
    IReadOnlyDictionary<int, string> Metered,
    IReadOnlyDictionary<int, string> Unmetered,
    IReadOnlyList<UsageRecord> Records,
    int MeteringErrorsLogged,
    TimeSpan MeteredElapsed)
{
    /// <summary>Scripted calls per expected status.</summary>
    public IReadOnlyDictionary<UsageStatus, int> ScriptedByStatus => Cases.GroupBy(c => c.ExpectedStatus).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Stored records per status.</summary>
    public IReadOnlyDictionary<UsageStatus, int> RecordedByStatus => Records.GroupBy(r => r.Status).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>The promises this run broke; empty when it passed.</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            var failures = new List<string>();
            foreach (var c in Cases)
            {
                var metered = Metered.GetValueOrDefault(c.Index, "not run");
                var unmetered = Unmetered.GetValueOrDefault(c.Index, "not run");

                // A cut stream surfaces as an IOException or a ClientResultException depending on
                // when the cut is seen, metered or not: both must fail, the type may differ.
                var same = c.Fault == ModelFault.CutStream
                    ? metered != "ok" && unmetered != "ok" && metered != "not run" && unmetered != "not run"
                    : metered == unmetered;
                if (!same)
                {
                    failures.Add($"{c}: metered caller saw '{metered}', unmetered '{unmetered}'");
                }
            }

            var byCase = Records.Where(r => r.ProblemId is not null).ToLookup(r => r.ProblemId!);
            foreach (var c in Cases)
            {
                var records = byCase[CaseId(c.Index)].ToList();
                if (records.Count != 1)
                {
                    failures.Add($"{c}: {records.Count} records (must be 1)");
                    continue;
                }

                var r = records[0];
                if (r.Status != c.ExpectedStatus || (c.Fault != ModelFault.CutStream && r.HttpStatus != c.ExpectedHttpStatus))
                {
                    failures.Add($"{c}: recorded {r.Status} HTTP {r.HttpStatus?.ToString(CultureInfo.InvariantCulture) ?? "-"}, expected {c.ExpectedStatus} HTTP {c.ExpectedHttpStatus}");
                }
                else if (c.Fault == ModelFault.None && (r.InputTokens != HomeworkModel.Usage.PromptTokens || r.OutputTokens != HomeworkModel.Usage.CompletionTokens))
                {
                    failures.Add($"{c}: recorded {r.InputTokens}/{r.OutputTokens} tokens, the model reported {HomeworkModel.Usage.PromptTokens}/{HomeworkModel.Usage.CompletionTokens}");
                }
            }

            if (Records.Count != Cases.Count)
            {
                failures.Add($"{Records.Count} records for {Cases.Count} calls");
            }

            if (MeteringErrorsLogged != 0)
            {
                failures.Add($"metering logged {MeteringErrorsLogged} errors of its own");
            }

            return failures.Count > 20 ? [.. failures.Take(20), $"... and {failures.Count - 20} more"] : failures;
        }
    }

    /// <summary>The lines the command prints (and a test shows when it fails).</summary>
    public IEnumerable<string> Report()
    {
        yield return $"{Cases.Count} calls from {Callers} callers through the metered SDK in {MeteredElapsed.TotalSeconds:F1}s; the same script through an unmetered client";
        var outcomes = Cases.GroupBy(c => c.ToString()[(c.ToString().IndexOf(' ', StringComparison.Ordinal) + 1)..])
            .Select(g => $"{g.Key} x{g.Count()}: metered {string.Join(", ", g.Select(c => Metered.GetValueOrDefault(c.Index, "?")).Distinct())}; unmetered {string.Join(", ", g.Select(c => Unmetered.GetValueOrDefault(c.Index, "?")).Distinct())}");
        foreach (var line in outcomes)
        {
            yield return "  " + line;
        }

        var statuses = Enum.GetValues<UsageStatus>().Where(s => ScriptedByStatus.ContainsKey(s) || RecordedByStatus.ContainsKey(s));
        yield return "records by status (recorded / scripted): " + string.Join(", ", statuses.Select(s => $"{s} {RecordedByStatus.GetValueOrDefault(s)}/{ScriptedByStatus.GetValueOrDefault(s)}"));
        yield return $"metering errors logged: {MeteringErrorsLogged}";
        foreach (var f in Failures)
        {
            yield return "  FAILED: " + f;
        }

        yield return Failures.Count == 0 ? "PASS" : "FAIL";
    }

    internal static string CaseId(int index) => "case-" + index.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// The model endpoint misbehaving under load: a script of successes mixed with 500s, 429s,
/// malformed JSON, replies without usage and cut streams, played by 16 concurrent callers through
/// the metered SDK (<see cref="MeteredHost"/>), then the same script through a plain unmetered client.
/// Each call's reply is chosen by the case number in its prompt, so concurrency cannot reorder it.
/// </summary>
public static partial class ModelFaultScenario
{
    /// <summary>The repeating mix: half successes, the rest one of each fault (plain and streaming).</summary>
    private static readonly (ModelFault Fault, bool Stream)[] Mix =
    [
        (ModelFault.None, false), (ModelFault.None, true), (ModelFault.ServerError, false), (ModelFault.None, false),
        (ModelFault.RateLimited, true), (ModelFault.None, true), (ModelFault.MalformedJson, false), (ModelFault.None, false),
        (ModelFault.NoUsage, false), (ModelFault.None, true), (ModelFault.CutStream, true), (ModelFault.None, false),
        (ModelFault.RateLimited, false), (ModelFault.None, true), (ModelFault.NoUsage, true), (ModelFault.None, false),
        (ModelFault.ServerError, true), (ModelFault.None, true), (ModelFault.CutStream, true), (ModelFault.None, false),
    ];

    public static IReadOnlyList<ModelFaultCase> Script(int calls) =>
        Enumerable.Range(0, calls).Select(i => new ModelFaultCase(i, Mix[i % Mix.Length].Fault, Mix[i % Mix.Length].Stream)).ToList();

    /// <summary>Runs <paramref name="calls"/> scripted calls from <paramref name="callers"/> loops; in-memory store unless a connection string is given.</summary>
    public static async Task<ModelFaultOutcome> RunAsync(int calls, int callers, string? connectionString, Action<string>? log = null)
    {
        var cases = Script(calls);
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        try
        {
            await using var model = await FakeOpenAIServer.StartAsync().ConfigureAwait(false);
            model.Responder = request => Reply(request, cases);
            await using var host = await MeteredHost.StartAsync(model.Endpoint, connectionString, spool, TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);

            var clock = System.Diagnostics.Stopwatch.StartNew();
            var metered = await PlayAsync(cases, callers, host.Chat, scoped: true).ConfigureAwait(false);
            var elapsed = clock.Elapsed;
            log?.Invoke($"metered: {calls} calls in {elapsed.TotalSeconds:F1}s");

            var plain = new OpenAIClient(new ApiKeyCredential("load-test-key"), new OpenAIClientOptions { Endpoint = model.Endpoint, RetryPolicy = new ClientRetryPolicy(0) });
            var unmetered = await PlayAsync(cases, callers, plain.GetChatClient("gpt-4o-mini"), scoped: false).ConfigureAwait(false);
            log?.Invoke("unmetered: done");

            var queries = host.Services.GetRequiredService<IUsageQueries>();
            var records = await Eventually.PollAsync(
                async ct =>
                {
                    var all = new List<UsageRecord>();
                    await foreach (var record in queries.ExportAsync(new UsageExportQuery(), ct).ConfigureAwait(false))
                    {
                        all.Add(record);
                    }

                    return all;
                },
                all => all.Count >= calls,
                TimeSpan.FromSeconds(30),
                TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);

            return new ModelFaultOutcome(callers, cases, metered, unmetered, records.Value, host.MeteringErrors, elapsed);
        }
        finally
        {
            FaultScenarios.DeleteFolder(spool);
        }
    }

    private static async Task<Dictionary<int, string>> PlayAsync(IReadOnlyList<ModelFaultCase> cases, int callers, ChatClient chat, bool scoped)
    {
        var outcomes = new Dictionary<int, string>();
        var next = -1;
        async Task Loop()
        {
            await Task.Yield();
            int i;
            while ((i = Interlocked.Increment(ref next)) < cases.Count)
            {
                var c = cases[i];
                using var scope = scoped ? UsageScope.Begin(new UsageContext { Endpoint = "model-faults", ProblemId = ModelFaultOutcome.CaseId(c.Index) }) : null;
                var outcome = await CallAsync(chat, c).ConfigureAwait(false);
                lock (outcomes)
                {
                    outcomes[c.Index] = outcome;
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Loop())).ConfigureAwait(false);
        return outcomes;
    }

    /// <summary>Makes the call as an application would; "ok" or what the SDK threw (type and HTTP status).</summary>
    private static async Task<string> CallAsync(ChatClient chat, ModelFaultCase c)
    {
        List<ChatMessage> messages = [new UserChatMessage($"Fault case {c.Index}: give me a hint for 2x + 3 = 7.")];
        try
        {
            if (c.Stream)
            {
                var text = 0;
                await foreach (var update in chat.CompleteChatStreamingAsync(messages).ConfigureAwait(false))
                {
                    text += update.ContentUpdate.Count;
                }

                return text > 0 ? "ok" : "ok (no text)";
            }

            ChatCompletion completion = await chat.CompleteChatAsync(messages).ConfigureAwait(false);
            return completion.Content.Count > 0 ? "ok" : "ok (no text)";
        }
#pragma warning disable CA1031 // What the SDK throws is the observation.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex is ClientResultException cre ? $"{ex.GetType().Name} {cre.Status}" : ex.GetType().Name;
        }
    }

    private static FakeReply Reply(FakeRequest request, IReadOnlyList<ModelFaultCase> cases)
    {
        var m = CaseRegex().Match(request.Body);
        var fault = m.Success && int.TryParse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture, out var index) && index < cases.Count ? cases[index].Fault : ModelFault.None;
        var reply = new FakeReply { Usage = HomeworkModel.Usage, Text = "Which number times two, plus three, makes seven?" };
        return fault switch
        {
            ModelFault.ServerError => reply with { Kind = FakeReplyKind.HttpError, StatusCode = 500 },
            ModelFault.RateLimited => reply with { Kind = FakeReplyKind.HttpError, StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(1) },
            ModelFault.MalformedJson => reply with { Kind = FakeReplyKind.MalformedJson },
            ModelFault.NoUsage => reply with { Kind = FakeReplyKind.MissingUsage },
            ModelFault.CutStream => reply with { Kind = FakeReplyKind.CutStream, CutAfterChunks = 2, ChunkDelay = TimeSpan.FromMilliseconds(5) },
            _ => reply,
        };
    }

    [GeneratedRegex(@"Fault case (\d+):")]
    private static partial Regex CaseRegex();
}
