using System.Data;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TokenMeter.Querying;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// <c>export --stages</c>: the parts of the export measured alone, in this process, over the same
/// seeded table: PostgreSQL's rows read with Npgsql (sequential and buffered rows), and the store's
/// <see cref="IUsageQueries.ExportAsync"/> (rows to <see cref="UsageRecord"/>s). The HTTP route's figure
/// minus these is what the CSV writer and Kestrel cost.
/// </summary>
public static class ExportStages
{
    private const string Columns =
        "id, created_at, user_id, endpoint, operation, request_model, model, service_tier, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, audio_input_tokens, audio_output_tokens, total_tokens, cost_usd, price_id, duration_ms, status, http_status, streaming, session_id, problem_id, metadata";

    public static async Task RunAsync(string connectionString, int postmaster, Action<string> log)
    {
        long rows;
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync().ConfigureAwait(false);
            await using var count = new NpgsqlCommand("SELECT count(*) FROM user_api_usage", connection);
            rows = (long)(await count.ExecuteScalarAsync().ConfigureAwait(false))!;
        }

        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<Microsoft.Extensions.Configuration.IConfiguration>(new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build());
        services.AddTokenMeter().AddPostgresStore(connectionString);
        await using var provider = services.BuildServiceProvider();
        var queries = provider.GetRequiredService<IUsageQueries>();
        using var token = new CancellationTokenSource();

        // Rounds of every stage in turn, so the load of the moment hits each alike.
        for (var round = 0; round < 3; round++)
        {
            await MeasureAsync("npgsql rows, SequentialAccess", postmaster, log, () => RawAsync(connectionString, CommandBehavior.SequentialAccess)).ConfigureAwait(false);
            await MeasureAsync("npgsql binary COPY TO STDOUT", postmaster, log, () => CopyAsync(connectionString)).ConfigureAwait(false);
            await MeasureAsync("raw binary COPY bytes alone (what the store's row blocks read)", postmaster, log, () => RawCopyAsync(connectionString, rows, token.Token)).ConfigureAwait(false);
            await MeasureAsync("raw binary COPY bytes alone, synchronous reads", postmaster, log, () => Task.Run(() => RawCopySync(connectionString, rows))).ConfigureAwait(false);
            await MeasureAsync("store ExportBlocksAsync, every row read (the CSV export's source on PostgreSQL)", postmaster, log, async () =>
            {
                long n = 0;
                await foreach (var block in ((IUsageExportRowSource)queries).ExportBlocksAsync(new UsageExportQuery(null, null, null), token.Token).ConfigureAwait(false))
                {
                    var position = 0;
                    while (block.TryRead(ref position, out _))
                    {
                        n++;
                    }
                }

                return n;
            }).ConfigureAwait(false);
            await MeasureAsync("store ExportAsync -> UsageRecord (the CSV export's source on other stores)", postmaster, log, async () =>
            {
                long n = 0;
                await foreach (var r in queries.ExportAsync(new UsageExportQuery(null, null, null), token.Token).ConfigureAwait(false))
                {
                    n += r.TotalTokens > 0 ? 1 : 1;
                }

                return n;
            }).ConfigureAwait(false);
        }
    }

    private static async Task MeasureAsync(string name, int postmaster, Action<string> log, Func<Task<long>> run)
    {
        var me = Process.GetCurrentProcess();
        me.Refresh();
        var cpu = me.TotalProcessorTime.TotalSeconds;
        var pg = ProcessCpu.ChildrenOf(postmaster);
        var clock = Stopwatch.StartNew();
        var rows = await run().ConfigureAwait(false);
        var seconds = clock.Elapsed.TotalSeconds;
        me.Refresh();
        cpu = me.TotalProcessorTime.TotalSeconds - cpu;
        pg = ProcessCpu.ChildrenOf(postmaster) - pg;
        log(string.Create(CultureInfo.InvariantCulture,
            $"  stage {name}: {rows:N0} rows in {seconds:F2} s = {rows / seconds:N0} rows/s; CPU µs/row: this process {cpu * 1e6 / rows:F2}, postgres {pg * 1e6 / rows:F2}; load {Commands.LoadAverage()}"));
    }

    private static async Task<long> CopyAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var export = await connection.BeginBinaryExportAsync($"COPY (SELECT {Columns} FROM user_api_usage ORDER BY created_at, id) TO STDOUT (FORMAT BINARY)").ConfigureAwait(false);
        long n = 0;
        long sink = 0;
        while (await export.StartRowAsync().ConfigureAwait(false) >= 0)
        {
            sink += export.Read<Guid>().GetHashCode() & 1;
            sink += export.Read<DateTime>().Ticks & 1;
            for (var i = 2; i < 8; i++)
            {
                sink += Str(export);
            }

            for (var i = 8; i < 15; i++)
            {
                sink += export.Read<long>();
            }

            sink += Dec(export);
            sink += Str(export);
            sink += (long)export.Read<double>();
            sink += export.Read<string>().Length;
            sink += Int(export);
            sink += export.Read<bool>() ? 1 : 0;
            for (var i = 21; i < 24; i++)
            {
                sink += Str(export);
            }

            n++;
        }

        return sink > 0 ? n : n;
    }

    /// <summary>What the store's raw export reads: the binary COPY of its columns as bytes, in 512 KiB reads (nothing parsed).</summary>
    private static async Task<long> RawCopyAsync(string connectionString, long rows, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var copy = await connection.BeginRawBinaryCopyAsync(
            "COPY (SELECT id, created_at, user_id, endpoint, operation, request_model, model, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
            + "reasoning_tokens, total_tokens, cost_usd, price_id, duration_ms, status, http_status, streaming, session_id, problem_id, metadata, cost_source "
            + "FROM user_api_usage ORDER BY created_at, id) TO STDOUT (FORMAT BINARY)",
            cancellationToken).ConfigureAwait(false);
        var buffer = new byte[512 * 1024];
        long bytes = 0;
        int read;
        while ((read = await copy.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            bytes += read;
        }

        return bytes > 0 ? rows : 0;
    }

    private static long RawCopySync(string connectionString, long rows)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var copy = connection.BeginRawBinaryCopy(
            "COPY (SELECT id, created_at, user_id, endpoint, operation, request_model, model, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
            + "reasoning_tokens, total_tokens, cost_usd, price_id, duration_ms, status, http_status, streaming, session_id, problem_id, metadata, cost_source "
            + "FROM user_api_usage ORDER BY created_at, id) TO STDOUT (FORMAT BINARY)");
        var buffer = new byte[512 * 1024];
        long bytes = 0;
        int read;
        while ((read = copy.Read(buffer)) > 0)
        {
            bytes += read;
        }

        return bytes > 0 ? rows : 0;
    }

    private static long Str(NpgsqlBinaryExporter e)
    {
        if (e.IsNull)
        {
            e.Skip();
            return 0;
        }

        return e.Read<string>().Length;
    }

    private static long Dec(NpgsqlBinaryExporter e)
    {
        if (e.IsNull)
        {
            e.Skip();
            return 0;
        }

        return (long)e.Read<decimal>();
    }

    private static long Int(NpgsqlBinaryExporter e)
    {
        if (e.IsNull)
        {
            e.Skip();
            return 0;
        }

        return e.Read<int>();
    }

    private static async Task<long> RawAsync(string connectionString, CommandBehavior behavior)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM user_api_usage ORDER BY created_at, id", connection) { CommandTimeout = 0 };
        await using var reader = await command.ExecuteReaderAsync(behavior).ConfigureAwait(false);
        long n = 0;
        long sink = 0;
        while (await reader.ReadAsync().ConfigureAwait(false))
        {
            for (var i = 0; i < reader.FieldCount; i++)
            {
                if (!reader.IsDBNull(i))
                {
                    var value = reader.GetValue(i);
                    sink += value is string s ? s.Length : 1;
                }
            }

            n++;
        }

        return sink > 0 ? n : n;
    }
}
