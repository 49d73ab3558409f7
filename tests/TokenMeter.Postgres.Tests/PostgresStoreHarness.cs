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

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{s}", S, StringComparison.Ordinal));
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{s}", S, StringComparison.Ordinal));
        await command.ExecuteNonQueryAsync();
    }

    public ValueTask DisposeAsync() => Context.DisposeAsync();
}
