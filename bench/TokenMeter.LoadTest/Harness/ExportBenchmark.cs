using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Npgsql;
using TokenMeter.Testing.Postgres;
using TokenMeter.Testing.Scenarios;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// <c>export</c>: the admin CSV export through the real HTTP route <c>GET /api/usage/export</c> of
/// the sample child process (PostgreSQL store, the sample's own user directory), over a
/// <c>user_api_usage</c> table seeded in PostgreSQL with generate_series. Reads the whole body,
/// counts the rows, and samples the server process's resident memory every 50 ms.
/// </summary>
public static class ExportBenchmark
{
    public const int Users = 1000;
    public const int Days = 10;

    public sealed record Run(string Query, long ExpectedRows, long Rows, long Bytes, double Seconds, double FirstByteMs, long RssBeforeBytes, long PeakRssBytes,
        double ServerCpuSeconds, double PostgresCpuSeconds, double HarnessCpuSeconds, string Header)
    {
        public double RowsPerSecond => Rows / Seconds;
    }

    public static async Task<IReadOnlyList<Run>> RunAsync(long rows, Action<string> log, bool stages = false)
    {
        await using var server = await PostgresServer.StartAsync().ConfigureAwait(false);
        var connectionString = await server.CreateDatabaseAsync("export").ConfigureAwait(false);
        var postmaster = await SustainedBenchmark.PostmasterPidAsync(connectionString).ConfigureAwait(false);
        var spool = Directory.CreateTempSubdirectory("tokenmeter-spool-").FullName;
        try
        {
            await using var model = await HomeworkModel.StartAsync(TimeSpan.Zero).ConfigureAwait(false);
            var settings = SampleProcess.Settings(connectionString, model.Endpoint, spool, TimeSpan.FromSeconds(1));
            await using var sample = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
            log($"sample pid {sample.Pid} on {sample.BaseAddress} (PostgreSQL store)");

            // The window: the Days whole UTC days before today, rows spread evenly over it.
            var first = DateOnly.FromDateTime(DateTime.UtcNow).AddDays(-Days);
            var seed = Stopwatch.StartNew();
            await SeedAsync(connectionString, rows, first).ConfigureAwait(false);
            log($"seeded {rows:N0} rows over {first:yyyy-MM-dd}..{first.AddDays(Days - 1):yyyy-MM-dd} for {Users} users in {seed.Elapsed.TotalSeconds:F1} s (generate_series, then VACUUM ANALYZE)");

            string token;
            using (var login = SampleClient.Create(sample.BaseAddress, 4))
            {
                token = await SampleClient.LoginAsync(login, SampleProcess.AdminUsername, SampleProcess.AdminPassword).ConfigureAwait(false);
            }

            using var http = new HttpClient { BaseAddress = sample.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

            // Warm the route (JIT, plans) on a small range, then one day (~1/Days of the rows), then everything twice.
            var day = first.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            var runs = new List<Run>();
            await ExportAsync(http, sample, postmaster, connectionString, $"?from={day}&to={day}&userId={FirstUserId(connectionString)}", log).ConfigureAwait(false);
            runs.Add(await ExportAsync(http, sample, postmaster, connectionString, $"?from={day}&to={day}", log).ConfigureAwait(false));
            runs.Add(await ExportAsync(http, sample, postmaster, connectionString, string.Empty, log).ConfigureAwait(false));
            runs.Add(await ExportAsync(http, sample, postmaster, connectionString, string.Empty, log).ConfigureAwait(false));
            if (Environment.GetEnvironmentVariable("TOKENMETER_SAMPLE_DLL_B") is { Length: > 0 } other)
            {
                await CompareAsync(other, settings, token, postmaster, connectionString, http, sample, log).ConfigureAwait(false);
            }

            if (stages)
            {
                await ExportStages.RunAsync(connectionString, postmaster, log).ConfigureAwait(false);
            }

            return runs;
        }
        finally
        {
            try
            {
                Directory.Delete(spool, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// A/B of two builds of the sample over the same database: TOKENMETER_SAMPLE_DLL_B names the other
    /// HomeworkApi.dll; full exports alternate A B B A A B B A.
    /// </summary>
    private static async Task CompareAsync(string otherDll, Dictionary<string, string?> settings, string token, int postmaster, string connectionString, HttpClient httpA, SampleProcess sampleA, Action<string> log)
    {
        var previous = Environment.GetEnvironmentVariable("TOKENMETER_SAMPLE_DLL");
        Environment.SetEnvironmentVariable("TOKENMETER_SAMPLE_DLL", otherDll);
        SampleProcess sampleB;
        try
        {
            sampleB = await SampleProcess.StartAsync(settings).ConfigureAwait(false);
        }
        finally
        {
            Environment.SetEnvironmentVariable("TOKENMETER_SAMPLE_DLL", previous);
        }

        await using (sampleB.ConfigureAwait(false))
        {
            using var httpB = new HttpClient { BaseAddress = sampleB.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };
            httpB.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            log("B = " + otherDll);
            await ExportAsync(httpB, sampleB, postmaster, connectionString, string.Empty, log).ConfigureAwait(false);
            var a = new List<double>();
            var b = new List<double>();
            for (var i = 0; i < 8; i++)
            {
                var isA = (i % 4) is 0 or 3;
                log(isA ? "A:" : "B:");
                var run = await ExportAsync(isA ? httpA : httpB, isA ? sampleA : sampleB, postmaster, connectionString, string.Empty, log).ConfigureAwait(false);
                (isA ? a : b).Add(run.RowsPerSecond);
            }

            log(string.Create(CultureInfo.InvariantCulture, $"A/B rows/s: A median {a.Order().ElementAt(a.Count / 2):F0} [{string.Join(' ', a.Select(x => x.ToString("F0", CultureInfo.InvariantCulture)))}], B median {b.Order().ElementAt(b.Count / 2):F0} [{string.Join(' ', b.Select(x => x.ToString("F0", CultureInfo.InvariantCulture)))}]"));
        }
    }

    private static string FirstUserId(string connectionString)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new NpgsqlCommand("SELECT min(id)::text FROM homework_users WHERE role = 'student'", connection);
        return (string)command.ExecuteScalar()!;
    }

    private static async Task<Run> ExportAsync(HttpClient http, SampleProcess sample, int postmaster, string connectionString, string query, Action<string> log)
    {
        var expected = await ExpectedRowsAsync(connectionString, query).ConfigureAwait(false);
        var rssBefore = sample.WorkingSetBytes();
        long peak = rssBefore;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, sample.WorkingSetBytes());
                try
                {
                    await Task.Delay(50, sampling.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        var me = Process.GetCurrentProcess();
        me.Refresh();
        var harnessCpu = me.TotalProcessorTime.TotalSeconds;
        var serverCpu = ProcessCpu.Seconds(sample.Pid);
        var pgCpu = ProcessCpu.ChildrenOf(postmaster);
        var clock = Stopwatch.StartNew();
        using var response = await http.GetAsync("/api/usage/export" + query, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"export answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync().ConfigureAwait(false)}");
        }

        var stream = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        await using var streamScope = stream.ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        long lines = 0;
        long bytes = 0;
        double firstByte = -1;
        var header = new List<byte>();
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer.AsMemory(0, buffer.Length)).ConfigureAwait(false)) > 0)
            {
                if (firstByte < 0)
                {
                    firstByte = clock.Elapsed.TotalMilliseconds;
                }

                var span = buffer.AsSpan(0, read);
                if (lines == 0)
                {
                    var end = span.IndexOf((byte)'\n');
                    header.AddRange((end < 0 ? span : span[..end]).ToArray());
                }

                lines += span.Count((byte)'\n');
                bytes += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        me.Refresh();
        harnessCpu = me.TotalProcessorTime.TotalSeconds - harnessCpu;
        serverCpu = ProcessCpu.Seconds(sample.Pid) - serverCpu;
        pgCpu = ProcessCpu.ChildrenOf(postmaster) - pgCpu;
        await sampling.CancelAsync().ConfigureAwait(false);
        await sampler.ConfigureAwait(false);
        var run = new Run(query.Length == 0 ? "(all)" : query, expected, lines - 1, bytes, seconds, firstByte, rssBefore, peak, serverCpu, pgCpu, harnessCpu,
            System.Text.Encoding.UTF8.GetString(header.ToArray()).TrimEnd('\r'));
        log(string.Create(CultureInfo.InvariantCulture,
            $"  export {run.Query}: {run.Rows:N0} rows (expected {expected:N0}), {bytes / 1048576.0:F0} MiB in {seconds:F2} s = {run.RowsPerSecond:N0} rows/s; first byte {firstByte:F0} ms; server RSS {rssBefore / 1048576.0:F0} MiB before, peak {peak / 1048576.0:F0} MiB; CPU s: server {serverCpu:F1}, postgres {pgCpu:F1}, harness {harnessCpu:F1}; load {Commands.LoadAverage()}"));
        return run;
    }

    private static async Task<long> ExpectedRowsAsync(string connectionString, string query)
    {
        var args = System.Web.HttpUtility.ParseQueryString(query);
        var conditions = new List<string>();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand { Connection = connection };
        if (args["from"] is { } from)
        {
            conditions.Add("created_at >= @from");
            command.Parameters.AddWithValue("from", DateOnly.ParseExact(from, "yyyy-MM-dd", CultureInfo.InvariantCulture).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
        }

        if (args["to"] is { } to)
        {
            conditions.Add("created_at < @to");
            command.Parameters.AddWithValue("to", DateOnly.ParseExact(to, "yyyy-MM-dd", CultureInfo.InvariantCulture).AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
        }

        if (args["userId"] is { } user)
        {
            conditions.Add("user_id = @user");
            command.Parameters.AddWithValue("user", user);
        }

        command.CommandText = "SELECT count(*) FROM user_api_usage" + (conditions.Count == 0 ? string.Empty : " WHERE " + string.Join(" AND ", conditions));
        return (long)(await command.ExecuteScalarAsync().ConfigureAwait(false))!;
    }

    /// <summary>
    /// <see cref="Users"/> student accounts in the sample's homework_users, and <paramref name="rows"/>
    /// calls spread evenly over <see cref="Days"/> days from <paramref name="first"/>, shaped like the
    /// sample's records (endpoints, models, tokens, cost, session and problem ids, metadata tags; one row
    /// in 10,000 with a formula-looking session id). Rollups are not filled: the export reads only the raw table.
    /// </summary>
    private static async Task SeedAsync(string connectionString, long rows, DateOnly first)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        async Task Exec(string sql, params object[] parameters)
        {
            await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
            foreach (var p in parameters)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = p });
            }

            await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        await Exec($"""
            INSERT INTO homework_users (username, email, password_hash, role)
            SELECT 'student' || g, 'student' || g || '@example.com', 'not-a-real-hash', 'student' FROM generate_series(1, {Users}) g
            """).ConfigureAwait(false);
        long firstStudent;
        await using (var min = new NpgsqlCommand("SELECT min(id) FROM homework_users WHERE role = 'student'", connection))
        {
            firstStudent = (long)(await min.ExecuteScalarAsync().ConfigureAwait(false))!;
        }

        var start = first.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        for (var month = new DateOnly(first.Year, first.Month, 1); month <= first.AddDays(Days); month = month.AddMonths(1))
        {
            await Exec("SELECT tokenmeter_create_partition($1)", month).ConfigureAwait(false);
        }

        var step = TimeSpan.FromDays(Days).TotalSeconds / rows;
        await Exec($"""
            INSERT INTO user_api_usage (id, created_at, user_id, endpoint, operation, request_model, model, service_tier,
                input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, price_id,
                duration_ms, status, http_status, streaming, session_id, problem_id, metadata)
            SELECT gen_random_uuid(),
                   $1::timestamptz + make_interval(secs => g * {step.ToString("R", CultureInfo.InvariantCulture)}),
                   u.id::text,
                   e.endpoint,
                   'chat.completions',
                   e.model,
                   e.model || '-2024-07-18',
                   'default',
                   200 + g % 1800, (g % 4) * 64, 30 + g % 500, 0, 230 + g % 1800 + 30 + g % 500,
                   round(((200 + g % 1800) * 0.00000015 + (30 + g % 500) * 0.0000006)::numeric, 10),
                   'openai/' || e.model || '/2026-01-01',
                   180 + (g % 997) * 0.731,
                   CASE WHEN g % 500 = 0 THEN 'http_error' ELSE 'ok' END,
                   CASE WHEN g % 500 = 0 THEN 500 ELSE 200 END,
                   e.endpoint = '/api/chat' AND g % 2 = 0,
                   CASE WHEN g % 10000 = 7 THEN '=HYPERLINK("http://x")' ELSE 'session-' || (g / 40) END,
                   CASE WHEN g % 3 = 0 THEN NULL ELSE 'problem-' || (g / 7) END,
                   jsonb_build_object('gradeLevel', (6 + g % 7)::text, 'subject', (ARRAY['math', 'physics', 'chemistry'])[(1 + g % 3)::int])
            FROM generate_series(0, $2 - 1) g
            CROSS JOIN LATERAL (SELECT {firstStudent} + (g * 7919) % {Users} AS id) u
            CROSS JOIN LATERAL (SELECT (ARRAY['/api/hint', '/api/analyze', '/api/verify', '/api/chat', '/api/validate-image'])[(1 + g % 5)::int] AS endpoint,
                                       (ARRAY['gpt-4o-mini', 'gpt-4o', 'gpt-4o', 'gpt-4o-mini', 'gpt-4o-mini'])[(1 + g % 5)::int] AS model) e
            """, start, rows).ConfigureAwait(false);
        await Exec("VACUUM ANALYZE user_api_usage").ConfigureAwait(false);
        await Exec("VACUUM ANALYZE homework_users").ConfigureAwait(false);
    }
}
