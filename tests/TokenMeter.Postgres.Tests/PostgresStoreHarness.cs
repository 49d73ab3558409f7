using Microsoft.Extensions.Time.Testing;
using Npgsql;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Schema;
using TokenMeter.Postgres.Storage;

namespace TokenMeter.Postgres.Tests;

/// <summary>A migrated store in its own fresh schema, with a fake clock.</summary>
internal sealed class PostgresStoreHarness : IAsyncDisposable
{
    private PostgresStoreHarness(NpgsqlDataSource dataSource, PostgresStoreContext context, FakeTimeProvider time)
    {
        DataSource = dataSource;
        Context = context;
        Time = time;
        Store = new PostgresUsageStore(context);
        Queries = new PostgresUsageQueries(context);
        Budgets = new PostgresBudgetStore(context);
        Deliveries = new PostgresDeliveryLog(context);
    }

    public NpgsqlDataSource DataSource { get; }

    public PostgresStoreContext Context { get; }

    public FakeTimeProvider Time { get; }

    public PostgresUsageStore Store { get; }

    public PostgresUsageQueries Queries { get; }

    public PostgresBudgetStore Budgets { get; }

    public PostgresDeliveryLog Deliveries { get; }

    public string S => Context.Quoted;

    public static async Task<PostgresStoreHarness> CreateAsync(string connectionString, Action<PostgresStoreOptions>? configure = null, DateTimeOffset? now = null)
    {
        var options = new PostgresStoreOptions { Schema = "s_" + Guid.NewGuid().ToString("N")[..12] };
        configure?.Invoke(options);
        var time = new FakeTimeProvider(now ?? new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
        var dataSource = NpgsqlDataSource.Create(connectionString);
        var context = new PostgresStoreContext(dataSource, ownsDataSource: true, options, time);
        await PostgresMigrator.MigrateAsync(dataSource, context.Schema);
        context.MarkReady();
        return new PostgresStoreHarness(dataSource, context, time);
    }

    /// <summary>Another app instance on the same schema: its own data source, context and store.</summary>
    public PostgresStoreHarness OtherInstance(Action<PostgresStoreOptions>? configure = null)
    {
        var options = new PostgresStoreOptions { Schema = Context.Schema };
        configure?.Invoke(options);
        var dataSource = NpgsqlDataSource.Create(DataSource.ConnectionString);
        var context = new PostgresStoreContext(dataSource, ownsDataSource: true, options, Time);
        context.MarkReady();
        return new PostgresStoreHarness(dataSource, context, Time);
    }

    /// <summary>Waits for a background fold in flight, then folds whatever is still pending.</summary>
    public async Task<long> FoldAsync()
    {
        await Context.Fold.WhenIdleAsync();
        return await Context.Fold.FoldAsync() ?? throw new InvalidOperationException("another fold held the lock");
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{s}", S, StringComparison.Ordinal));
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>The first column of every row, as text; <paramref name="parameters"/> are $1, $2, ...</summary>
    public async Task<List<string>> StringsAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{s}", S, StringComparison.Ordinal));
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{s}", S, StringComparison.Ordinal));
        await command.ExecuteNonQueryAsync();
    }

    public ValueTask DisposeAsync() => Context.DisposeAsync();
}
