using System.Globalization;
using Npgsql;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Repricing;
using TokenMeter.Postgres.Schema;
using TokenMeter.Postgres.Storage;
using TokenMeter.Testing.Conformance;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>The shared store conformance suite, run against PostgreSQL.</summary>
public sealed class PostgresStoreConformanceTests(PostgresStoreConformanceTests.Fixture fixture)
    : UsageStoreConformanceTests, IClassFixture<PostgresStoreConformanceTests.Fixture>
{
    protected override async ValueTask<ConformanceStore> CreateStoreAsync(TimeProvider timeProvider)
    {
        // One migrated schema for the class, emptied before each test (much faster than a schema per test).
        await fixture.TruncateAsync();
        var context = new PostgresStoreContext(fixture.DataSource, ownsDataSource: false, new PostgresStoreOptions { Schema = Fixture.Schema }, timeProvider);
        context.MarkReady();
        return new ConformanceStore(new PostgresUsageStore(context), new PostgresUsageQueries(context), new PostgresBudgetStore(context), new PostgresDeliveryLog(context), context.DisposeAsync)
        {
            Repricing = new PostgresRepricingStore(context),
        };
    }

    /// <summary>user_usage_summary, endpoint_usage_summary, daily_usage_summary and monthly_usage_summary against the records.</summary>
    protected override async Task AssertViewsAgreeWithRecordsAsync(IReadOnlyList<UsageRecord> records)
    {
        const string S = Fixture.Schema;
        Assert.Equal(
            Sums(records.Where(r => r.UserId is not null), r => r.UserId!),
            await ViewAsync($"SELECT user_id, total_calls, cache_write_tokens, coalesce(total_cost_usd, 0) FROM {S}.user_usage_summary"));
        Assert.Equal(
            Sums(records, r => $"{r.Endpoint}|{r.Model}"),
            await ViewAsync($"SELECT coalesce(endpoint, '') || '|' || coalesce(model, ''), calls, cache_write_tokens, coalesce(total_cost_usd, 0) FROM {S}.endpoint_usage_summary"));
        Assert.Equal(
            Sums(records, r => r.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
            await ViewAsync($"SELECT to_char(date, 'YYYY-MM-DD'), calls, cache_write_tokens, coalesce(cost_usd, 0) FROM {S}.daily_usage_summary"));
        Assert.Equal(
            Sums(records, r => r.CreatedAt.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture)),
            await ViewAsync($"SELECT month, calls, cache_write_tokens, coalesce(cost_usd, 0) FROM {S}.monthly_usage_summary"));

        static List<(string Key, long Calls, long CacheWriteTokens, decimal CostUsd)> Sums(IEnumerable<UsageRecord> rs, Func<UsageRecord, string> key) =>
            [.. rs.GroupBy(key, StringComparer.Ordinal)
                .Select(g => (g.Key, g.LongCount(), g.Sum(r => r.CacheWriteTokens), g.Sum(r => r.CostUsd ?? 0m)))
                .OrderBy(row => row.Key, StringComparer.Ordinal)];
    }

    private async Task<List<(string Key, long Calls, long CacheWriteTokens, decimal CostUsd)>> ViewAsync(string sql)
    {
        await using var command = fixture.DataSource.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(string, long, long, decimal)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetDecimal(3)));
        }

        return [.. rows.OrderBy(row => row.Item1, StringComparer.Ordinal)];
    }

    /// <summary>A database with the schema migrated once.</summary>
    public sealed class Fixture : PostgresDatabaseFixture
    {
        public const string Schema = "conformance";

        private string? truncate;

        public NpgsqlDataSource DataSource { get; private set; } = null!;

        public override async Task InitializeAsync()
        {
            await base.InitializeAsync();
            DataSource = NpgsqlDataSource.Create(ConnectionString);
            await PostgresMigrator.MigrateAsync(DataSource, Schema);
            await using var command = DataSource.CreateCommand("SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables WHERE schemaname = $1 AND tablename <> 'tokenmeter_migrations' AND tablename NOT LIKE 'user_api_usage_y%'");
            command.Parameters.AddWithValue(Schema);
            truncate = $"TRUNCATE {(string)(await command.ExecuteScalarAsync())!}, \"{Schema}\".user_api_usage";
        }

        public async Task TruncateAsync()
        {
            await using var command = DataSource.CreateCommand(truncate!);
            await command.ExecuteNonQueryAsync();
        }

        public override async Task DisposeAsync()
        {
            await DataSource.DisposeAsync();
            await base.DisposeAsync();
        }
    }
}
