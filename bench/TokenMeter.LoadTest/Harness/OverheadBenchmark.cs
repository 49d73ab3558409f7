using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;
using TokenMeter.Testing.Scenarios;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// <c>sample-vs-sdk</c>: the sample's <c>POST /api/hint</c> (the real HomeworkApi child process,
/// signed-in students, metering into PostgreSQL) against the same chat completion made directly with
/// an unmetered OpenAI SDK client, both against one loopback fake model that answers after a fixed
/// delay. A and B alternate in short phases (A B B A ...) within one run at each caller count.
/// </summary>
public static class OverheadBenchmark
{
    public const string StudentPassword = "Load-harness-pupil-2026";

    /// <summary>JIT CPU in a 2-s warm-up round below which the sample's tiered compilation counts as done (2.5 % of a core).</summary>
    private const double WarmJitMsPerRound = 50;

    public sealed record Side(long Calls, long Failed, double Seconds, double P50, double P99, double Throughput, IReadOnlyList<string> Errors);

    public sealed record Level(int Callers, Side Sample, Side Sdk, double SampleCpuMsPerCall, double HarnessCpuMsPerCallA, double HarnessCpuMsPerCallB);

    /// <param name="sampleEnvironment">More environment variables of the sample (runtime settings to compare, e.g. <c>DOTNET_GCgen0size</c>); they override the harness's.</param>
    /// <param name="tail">Probe both processes (<see cref="TailProbe"/>) and print, per caller count, what the slowest 1 % of calls have in common (<see cref="TailReport"/>).</param>
    public static async Task<IReadOnlyList<Level>> RunAsync(TimeSpan perSide, int[] callerCounts, bool postgres, TimeSpan modelDelay, Action<string> log, IReadOnlyDictionary<string, string>? sampleEnvironment = null, bool tail = false)
    {
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        var probeFile = Path.Combine(spool, "..", Path.GetFileName(spool) + "-probe.csv");
        var harnessEvents = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var harnessProbe = tail ? new TailProbe(harnessEvents.Enqueue, activities: false) : null;
        var timed = new System.Collections.Concurrent.ConcurrentQueue<TailReport.Call>();
        var recording = false;
        long traceIds = 0;
        PostgresServer? server = null;
        try
        {
            string? connectionString = null;
            if (postgres)
            {
                server = await PostgresServer.StartAsync().ConfigureAwait(false);
                connectionString = await server.CreateDatabaseAsync("overhead").ConfigureAwait(false);
            }

            await using var model = await HomeworkModel.StartAsync(modelDelay).ConfigureAwait(false);
            var settings = SampleProcess.Settings(connectionString, model.Endpoint, spool, TimeSpan.FromSeconds(1));
            if (tail)
            {
                settings["DOTNET_STARTUP_HOOKS"] = TailProbe.StartupHookPath;
                settings[TailProbe.OutputVariable] = probeFile;
            }

            foreach (var (name, value) in sampleEnvironment ?? new Dictionary<string, string>())
            {
                settings[name] = value;
            }

            await using var sample = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
            log($"sample pid {sample.Pid} on {sample.BaseAddress}, storage {(postgres ? "postgresql" : "memory")}, model delay {modelDelay.TotalMilliseconds:F0} ms, GC: DOTNET_gcServer={settings.GetValueOrDefault("DOTNET_gcServer") ?? "(runtimeconfig)"}"
                + string.Concat((sampleEnvironment ?? new Dictionary<string, string>()).Select(e => $", {e.Key}={e.Value}")));

            var students = callerCounts.Max();
            var tokens = await SignInStudentsAsync(sample.BaseAddress, students).ConfigureAwait(false);
            log($"{students} students registered and signed in");

            using var http = new HttpClient(new SocketsHttpHandler
            {
                MaxConnectionsPerServer = 1024,
                PooledConnectionLifetime = TimeSpan.FromMinutes(30),
            })
            {
                BaseAddress = sample.BaseAddress,
                Timeout = TimeSpan.FromSeconds(60),
            };
            var auth = tokens.Select(t => new AuthenticationHeaderValue("Bearer", t)).ToArray();
            var hintBody = Encoding.UTF8.GetBytes(SampleClient.HintBody);

            async Task CallSample(int index)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/api/hint");
                request.Headers.Authorization = auth[index];
                request.Content = new ByteArrayContent(hintBody);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
                string? traceId = null;
                if (tail)
                {
                    // The sample's activities of this request take this trace id: its parts are matched to this call by it.
                    traceId = Interlocked.Increment(ref traceIds).ToString("x32", CultureInfo.InvariantCulture);
                    request.Headers.TryAddWithoutValidation("traceparent", $"00-{traceId}-0000000000000001-01");
                }

                var start = DateTime.UtcNow.Ticks;
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                    throw new HttpRequestException($"/api/hint answered {(int)response.StatusCode}: {text}");
                }

                if (Volatile.Read(ref recording))
                {
                    timed.Enqueue(new TailReport.Call(true, traceId!, start, DateTime.UtcNow.Ticks));
                }
            }

            // One sample call, then replay exactly the model request it made (messages, JSON schema,
            // output limit) with a plain SDK client: the same call, minus the app around it.
            model.Reset();
            await CallSample(0).ConfigureAwait(false);
            var captured = model.Requests.Last(r => r.Path.EndsWith("/chat/completions", StringComparison.Ordinal));
            var body = captured.Json!.AsObject();
            var modelName = body["model"]!.GetValue<string>();
            var sdkCall = ToSdkCall(body);
            log($"model request of /api/hint: {captured.Body.Length} bytes, model {modelName}; the direct call sends the same messages, schema and limit");
            var direct = new OpenAIClient(new ApiKeyCredential("load-test-key"), new OpenAIClientOptions
            {
                Endpoint = model.Endpoint,
                RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0),
                NetworkTimeout = TimeSpan.FromSeconds(30),
            }).GetChatClient(modelName);

            async Task CallSdk(int index)
            {
                // Messages and options built per call, as the sample does (the SDK writes into the options).
                var (messages, options) = sdkCall();
                var start = DateTime.UtcNow.Ticks;
                ChatCompletion completion = await direct.CompleteChatAsync(messages, options).ConfigureAwait(false);
                if (completion.Content.Count == 0)
                {
                    throw new InvalidOperationException("empty completion");
                }

                if (Volatile.Read(ref recording))
                {
                    timed.Enqueue(new TailReport.Call(false, string.Empty, start, DateTime.UtcNow.Ticks));
                }
            }

            // Warm both paths (JIT, connection pools, PostgreSQL plans) at the highest caller count. The
            // sample's tiered JIT keeps compiling for 20-40 s after start (up to a third of a core on this
            // machine, on its own background thread): warm it until its CPU per call settles and that
            // thread has been (nearly) idle for two rounds, so the levels measure the app, not its JIT.
            var jit = new ThreadCpu(sample.Pid, ThreadCpu.TieredCompilation);
            jit.TakeSeconds();
            var previous = double.NaN;
            var jitQuiet = 0;
            for (var round = 1; round <= 40; round++)
            {
                var before = ProcessCpu.Seconds(sample.Pid);
                var warmed = await PhaseRunner.RunAsync(students, TimeSpan.FromSeconds(2), CallSample).ConfigureAwait(false);
                var perCall = (ProcessCpu.Seconds(sample.Pid) - before) * 1000 / Math.Max(1, warmed.Ok);
                var jitMs = jit.TakeSeconds() * 1000;
                jitQuiet = jitMs <= WarmJitMsPerRound ? jitQuiet + 1 : 0;
                log(string.Create(CultureInfo.InvariantCulture, $"warm-up {round}: sample {warmed.Ok / warmed.Elapsed.TotalSeconds:F0} calls/s, {perCall:F3} CPU ms/call, JIT {jitMs:F0} ms"));
                if (round >= 3 && Math.Abs(perCall - previous) <= 0.15 * previous && jitQuiet >= 2)
                {
                    break;
                }

                previous = perCall;
                model.Reset();
            }

            await PhaseRunner.RunAsync(students, TimeSpan.FromSeconds(4), CallSdk).ConfigureAwait(false);
            model.Reset();

            var me = Process.GetCurrentProcess();
            var levels = new List<Level>();
            foreach (var callers in callerCounts)
            {
                const int PhasesPerSide = 4;
                var phase = perSide / PhasesPerSide;
                var a = new List<PhaseResult>();
                var b = new List<PhaseResult>();
                double sampleCpu = 0, harnessCpuA = 0, harnessCpuB = 0;

                // One untimed second of each side at this caller count first. The students of this level may
                // have been idle since the warm-up (the levels before used fewer): a student's first call after
                // 30 s idle reads the account's role from PostgreSQL and claims new limit slices, a round trip
                // each, which belong to a user's return, not to the steady stream this level measures
                // (--tail showed them as the level's first calls, a fifth of the 1 % slowest at 16 callers).
                await PhaseRunner.RunAsync(callers, TimeSpan.FromSeconds(1), CallSample).ConfigureAwait(false);
                await PhaseRunner.RunAsync(callers, TimeSpan.FromSeconds(1), CallSdk).ConfigureAwait(false);
                model.Reset();
                var phases = new List<TailReport.Phase>();
                timed.Clear();
                Volatile.Write(ref recording, tail);
                jit.TakeSeconds();

                // A B B A A B B A: each side runs first as often as second, so a drift in the machine's load cancels out.
                for (var i = 0; i < PhasesPerSide * 2; i++)
                {
                    var isSample = (i % 4) is 0 or 3;
                    me.Refresh();
                    var harnessBefore = me.TotalProcessorTime.TotalSeconds;
                    var sampleBefore = ProcessCpu.Seconds(sample.Pid);
                    var phaseStart = DateTime.UtcNow.Ticks;
                    var result = await PhaseRunner.RunAsync(callers, phase, isSample ? CallSample : CallSdk).ConfigureAwait(false);
                    phases.Add(new TailReport.Phase(isSample, phaseStart, DateTime.UtcNow.Ticks));
                    me.Refresh();
                    var harnessUsed = me.TotalProcessorTime.TotalSeconds - harnessBefore;
                    if (isSample)
                    {
                        a.Add(result);
                        sampleCpu += ProcessCpu.Seconds(sample.Pid) - sampleBefore;
                        harnessCpuA += harnessUsed;
                    }
                    else
                    {
                        b.Add(result);
                        harnessCpuB += harnessUsed;
                    }

                    model.Reset();
                }

                var sideA = Summarize(a);
                var sideB = Summarize(b);
                var level = new Level(callers, sideA, sideB,
                    sampleCpu * 1000 / Math.Max(1, sideA.Calls),
                    harnessCpuA * 1000 / Math.Max(1, sideA.Calls),
                    harnessCpuB * 1000 / Math.Max(1, sideB.Calls));
                levels.Add(level);
                log(string.Create(CultureInfo.InvariantCulture,
                    $"  {callers} callers: sample p50 {sideA.P50:F2} ms p99 {sideA.P99:F2} ms {sideA.Throughput:F0}/s | sdk p50 {sideB.P50:F2} ms p99 {sideB.P99:F2} ms {sideB.Throughput:F0}/s | sample JIT {jit.TakeSeconds() * 1000:F0} ms | load {Commands.LoadAverage()}"));
                if (tail)
                {
                    Volatile.Write(ref recording, false);
                    await Task.Delay(500).ConfigureAwait(false); // the sample's probe writes its file every 200 ms
                    TailReport.Print([.. timed], phases, ReadShared(probeFile), harnessEvents, log);
                    var raw = Path.Combine(Path.GetTempPath(), FormattableString.Invariant($"tokenmeter-tail-{Environment.ProcessId}-{callers}"));
                    TailReport.Save(raw, [.. timed], phases, probeFile, harnessEvents);
                    log("    raw events (calls, phases, the sample's and the harness's probe lines): " + raw + ".*.csv");
                }
            }

            return levels;
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(spool, recursive: true);
                File.Delete(probeFile);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>The lines of a file another process is still appending to.</summary>
    private static List<string> ReadShared(string path)
    {
        var lines = new List<string>();
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        while (reader.ReadLine() is { } line)
        {
            lines.Add(line);
        }

        return lines;
    }

    /// <summary>Registers <c>loadstudent1..n</c> and returns a bearer token for each.</summary>
    public static async Task<string[]> SignInStudentsAsync(Uri baseAddress, int count)
    {
        using var http = SampleClient.Create(baseAddress, 16);
        var run = Guid.NewGuid().ToString("N")[..8];
        var tokens = new string[count];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, ct) =>
        {
            var username = $"load{run}s{i + 1}";
            using (var register = await http.PostAsJsonAsync("/api/auth/register", new { username, email = username + "@example.com", password = StudentPassword }, ct).ConfigureAwait(false))
            {
                if (!register.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"register {username}: {(int)register.StatusCode} {await register.Content.ReadAsStringAsync(ct).ConfigureAwait(false)}");
                }
            }

            tokens[i] = await SampleClient.LoginAsync(http, username, StudentPassword).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return tokens;
    }

    /// <summary>
    /// The SDK call equivalent to a captured chat-completions request body: a factory that builds
    /// new messages and options per call, from strings read once.
    /// </summary>
    public static Func<(List<ChatMessage> Messages, ChatCompletionOptions Options)> ToSdkCall(JsonObject body)
    {
        var parts = new List<(string Role, string Content)>();
        foreach (var m in body["messages"]!.AsArray())
        {
            var content = m!["content"] is JsonValue v ? v.GetValue<string>() : string.Concat(m["content"]!.AsArray().Select(p => p!["text"]?.GetValue<string>()));
            parts.Add((m["role"]!.GetValue<string>(), content));
        }

        int? max = body["max_completion_tokens"] is JsonValue mx ? mx.GetValue<int>() : null;
        var schema = body["response_format"]?["json_schema"] as JsonObject;
        var schemaName = schema?["name"]!.GetValue<string>();
        var schemaJson = schema?["schema"]!.ToJsonString();
        var strict = schema?["strict"]?.GetValue<bool>();
        return () =>
        {
            var messages = new List<ChatMessage>(parts.Count);
            foreach (var (role, content) in parts)
            {
                messages.Add(role switch
                {
                    "system" => new SystemChatMessage(content),
                    "assistant" => new AssistantChatMessage(content),
                    _ => new UserChatMessage(content),
                });
            }

            var options = new ChatCompletionOptions { MaxOutputTokenCount = max };
            if (schemaName is not null)
            {
                options.ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat(schemaName, BinaryData.FromString(schemaJson!), jsonSchemaIsStrict: strict);
            }

            return (messages, options);
        };
    }

    private static Side Summarize(List<PhaseResult> phases)
    {
        var latencies = phases.SelectMany(p => p.LatenciesMs).ToArray();
        var ok = phases.Sum(p => p.Ok);
        var seconds = phases.Sum(p => p.Elapsed.TotalSeconds);
        return new Side(ok, phases.Sum(p => p.Failed), seconds, Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), ok / seconds,
            phases.SelectMany(p => p.Errors).Distinct().Take(5).ToArray());
    }
}
