using System.Diagnostics;
using System.Text.RegularExpressions;
using Npgsql;
using TokenMeter.Postgres.Storage;

namespace TokenMeter.Benchmarks.Postgres;

/// <summary>
/// Where the store's ingest time goes: the store's COPY path with subsets of the rollup statement, so
/// the marginal cost of each group of grains shows (raw COPY; COPY + the batch's groups only; + the
/// pending append; + platform grains; + per-user grains; + the fold of the pending rows = the store).
/// </summary>
internal static partial class IngestGrains
{
    private static readonly (string Name, string[]? Keep)[] Variants =
    [
        ("COPY into user_api_usage + groups COPY, no rollups", []),
        ("+ user×endpoint×model groups appended to the pending table", ["pend"]),
        ("+ platform grains (endpoint×model by day, month)", ["pend", "ed", "em"]),
        ("+ per-user grains (user by day, month, total; active users)", ["pend", "ed", "em", "ud", "um", "ut", "ad", "am"]),
        ("+ pending folded (background folds, then the last one) = the store, every rollup", null),
    ];

    public static async Task RunAsync(NpgsqlDataSource dataSource, int count, int batchSize, Func<NpgsqlDataSource, int, int, Task<double>> rawCopy)
    {
        Console.WriteLine();
        Console.WriteLine($"where ingest time goes ({count:N0} records, {batchSize:N0}/batch; raw COPY before and after, the variants between):");
        var copyBefore = await rawCopy(dataSource, count, batchSize);
        var rates = new List<(string, double)>();
        foreach (var (name, keep) in Variants)
        {
            rates.Add((name, await VariantAsync(dataSource, count, batchSize, keep, name)));
        }

        // The bench's records spread 100,000 calls over 5 days (20,000 calls a day), so nearly every
        // call is its own user×endpoint×model×day row. A writer ingesting at this rate stamps them
        // within seconds: the same store path with those timestamps shows what the fold costs then.
        var live = await VariantAsync(dataSource, count, batchSize, null, "the store, every rollup, timestamps within 2 s (as a live writer stamps them)", TimeSpan.FromSeconds(2));

        var copyAfter = await rawCopy(dataSource, count, batchSize);
        var copy = (copyBefore + copyAfter) / 2;
        Console.WriteLine($"| ingest (store's COPY path, {batchSize:N0}/batch) | records/s | vs raw COPY ({copy:N0}/s) | µs per record (wall) | marginal µs per record |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        var previous = 1e6 / copy;
        Console.WriteLine($"| raw binary COPY into user_api_usage | {copy:N0} | 100 % | {previous:N1} | |");
        foreach (var (name, rate) in rates)
        {
            var micros = 1e6 / rate;
            Console.WriteLine($"| {name} | {rate:N0} | {rate / copy:P0} | {micros:N1} | {micros - previous:+0.0;-0.0} |");
            previous = micros;
        }

        Console.WriteLine($"| the store, every rollup, timestamps within 2 s instead of 5 days | {live:N0} | {live / copy:P0} | {1e6 / live:N1} | |");
    }

    private static async Task<double> VariantAsync(NpgsqlDataSource dataSource, int count, int batchSize, string[]? keep, string name, TimeSpan? span = null)
    {
        var schema = await PostgresBench.FreshSchemaAsync(dataSource, "grains" + (keep?.Length ?? (span is null ? 99 : 98)) + "_" + batchSize);
        var records = PostgresBench.Generate(count, new DateTimeOffset(2026, 12, 30, 0, 0, 0, TimeSpan.Zero), span ?? TimeSpan.FromDays(5)).ToList();
        await using var context = new PostgresStoreContext(dataSource, ownsDataSource: false, new TokenMeter.Postgres.PostgresStoreOptions { Schema = schema, CommandTimeoutSeconds = 600 }, TimeProvider.System);
        context.MarkReady();
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)).Distinct(), default);
        var store = new PostgresUsageStore(context);
        var statement = keep is null ? null : Subset(context.Sql.IngestGroups, keep);
        var watch = Stopwatch.StartNew();
        var stored = 0;
        foreach (var batch in records.Chunk(batchSize))
        {
            stored += statement is null ? await store.AppendAsync(batch) : await store.CopyAsync(batch, statement, default);
        }

        if (keep is null)
        {
            await context.Fold.WhenIdleAsync();
            await context.Fold.FoldAsync();
        }

        if (stored != count)
        {
            throw new InvalidOperationException($"stored {stored} of {count}");
        }

        var rate = count / watch.Elapsed.TotalSeconds;
        Console.WriteLine($"  {name}: {count:N0} records in {watch.Elapsed.TotalSeconds:N2} s = {rate:N0} records/s");
        return rate;
    }

    /// <summary>The ingest statement with only the rollup CTEs named in <paramref name="keep"/>.</summary>
    private static string Subset(string statement, string[] keep)
    {
        var parts = CteStart().Split(statement);

        // parts: [prefix up to the first rollup CTE, name1, body1, name2, body2, ...]; the last body ends with the final SELECT.
        var result = new System.Text.StringBuilder(parts[0]);
        string? tail = null;
        for (var i = 1; i + 1 < parts.Length; i += 2)
        {
            var name = parts[i];
            var body = parts[i + 1];
            var select = body.IndexOf("SELECT coalesce(sum(calls), 0)::integer", StringComparison.Ordinal);
            if (select >= 0)
            {
                tail = body[select..];
                body = body[..select];
            }

            if (keep.Contains(name))
            {
                result.Append(",\n").Append(name).Append(" AS (").Append(body.TrimEnd().TrimEnd(','));
            }
        }

        return result.Append('\n').Append(tail ?? throw new InvalidOperationException("no final SELECT")).ToString();
    }

    [GeneratedRegex(@",\s*\n\s*(pend|ud|um|ut|ed|em|ad|am) AS \(")]
    private static partial Regex CteStart();
}
