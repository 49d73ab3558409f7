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
