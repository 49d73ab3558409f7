using System.Diagnostics;
using Npgsql;
using TokenMeter.Postgres.Storage;

namespace TokenMeter.Benchmarks.Postgres;

/// <summary>
/// Where the store's ingest time goes: raw COPY; the store's writer alone (COPY into user_api_usage
/// tagged with the batch logged in usage_batches, no fold); + every rollup folded (background folds,
/// then the last one) = the store.
/// </summary>
internal static class IngestGrains
{
    private static readonly (string Name, bool Fold)[] Variants =
    [
        ("the store's writer: the batch logged in usage_batches + COPY into user_api_usage, no fold", false),
        ("+ every rollup folded (background folds, then the last one) = the store, every rollup", true),
    ];

    public static async Task RunAsync(NpgsqlDataSource dataSource, int count, int batchSize, Func<NpgsqlDataSource, int, int, Task<double>> rawCopy)
    {
        Console.WriteLine();
        Console.WriteLine($"where ingest time goes ({count:N0} records, {batchSize:N0}/batch; raw COPY before and after, the variants between):");
        var copyBefore = await rawCopy(dataSource, count, batchSize);
        var rates = new List<(string, double)>();
        foreach (var (name, fold) in Variants)
        {
            rates.Add((name, await VariantAsync(dataSource, count, batchSize, fold, name)));
        }

        // The bench's records spread 100,000 calls over 5 days (20,000 calls a day), so nearly every
        // call is its own user×endpoint×model×day row. A writer ingesting at this rate stamps them
        // within seconds: the same store path with those timestamps shows what the fold costs then.
        var live = await VariantAsync(dataSource, count, batchSize, true, "the store, every rollup, timestamps within 2 s (as a live writer stamps them)", TimeSpan.FromSeconds(2));

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

    private static async Task<double> VariantAsync(NpgsqlDataSource dataSource, int count, int batchSize, bool fold, string name, TimeSpan? span = null)
    {
        var schema = await PostgresBench.FreshSchemaAsync(dataSource, "grains" + (fold ? 1 : 0) + (span is null ? "" : "live") + "_" + batchSize);
        var records = PostgresBench.Generate(count, new DateTimeOffset(2026, 12, 30, 0, 0, 0, TimeSpan.Zero), span ?? TimeSpan.FromDays(5)).ToList();
        var options = new TokenMeter.Postgres.PostgresStoreOptions { Schema = schema, CommandTimeoutSeconds = 600 };
        if (!fold)
        {
            options.FoldEveryRecords = 10_000_000;
        }

        await using var context = new PostgresStoreContext(dataSource, ownsDataSource: false, options, TimeProvider.System);
        context.MarkReady();
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)).Distinct(), default);
        var store = new PostgresUsageStore(context);
        var watch = Stopwatch.StartNew();
        var stored = 0;
        foreach (var batch in records.Chunk(batchSize))
        {
            stored += await store.AppendAsync(batch);
        }

        if (fold)
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
}
