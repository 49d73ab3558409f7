using Npgsql;
using TokenMeter.Postgres.Schema;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

public sealed class MigrationTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    [Fact]
    public async Task MigrateAsync_EmptyDatabase_CreatesEveryObjectAndReapplyingDoesNothing()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = "m_" + Guid.NewGuid().ToString("N")[..10];

        Assert.Equal(PostgresMigration.All.Count, await PostgresMigrator.MigrateAsync(dataSource, schema));
        Assert.Equal(0, await PostgresMigrator.MigrateAsync(dataSource, schema));

        var objects = await NamesAsync(dataSource, schema);
        foreach (var name in (string[])["user_api_usage", "user_usage_summary", "monthly_usage_summary", "endpoint_usage_summary", "daily_usage_summary", "tokenmeter_budgets", "tokenmeter_deliveries", "tokenmeter_migrations"])
        {
            Assert.Contains(name, objects);
        }

        await using var count = dataSource.CreateCommand($"SELECT count(*) FROM \"{schema}\".tokenmeter_migrations");
        Assert.Equal((long)PostgresMigration.All.Count, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task MigrateAsync_FourInstancesAtOnce_EndWithOneSchema()
    {
        var schema = "m_" + Guid.NewGuid().ToString("N")[..10];
        var sources = Enumerable.Range(0, 4).Select(_ => NpgsqlDataSource.Create(database.ConnectionString)).ToArray();
        try
        {
            var applied = await Task.WhenAll(sources.Select(s => Task.Run(() => PostgresMigrator.MigrateAsync(s, schema))));

            Assert.Equal(PostgresMigration.All.Count, applied.Sum());
            Assert.Single(applied, a => a > 0);
            await using var count = sources[0].CreateCommand($"SELECT count(*) FROM \"{schema}\".tokenmeter_migrations");
            Assert.Equal((long)PostgresMigration.All.Count, await count.ExecuteScalarAsync());
        }
        finally
        {
            foreach (var s in sources)
            {
                await s.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task MigrateAsync_ChangedChecksum_FailsNamingTheMigration()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = "m_" + Guid.NewGuid().ToString("N")[..10];
        await PostgresMigrator.MigrateAsync(dataSource, schema);
        await using (var tamper = dataSource.CreateCommand($"UPDATE \"{schema}\".tokenmeter_migrations SET checksum = 'edited' WHERE version = 1"))
        {
            await tamper.ExecuteNonQueryAsync();
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PostgresMigrator.MigrateAsync(dataSource, schema));
        Assert.Contains("0001_initial.sql", error.Message, StringComparison.Ordinal);
        Assert.Contains("checksum", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetCreationScript_RunTwiceByHand_MatchesWhatTheInstallerRecords()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = "dba_" + Guid.NewGuid().ToString("N")[..10];
        var script = PostgresSchema.GetCreationScript(schema);

        for (var i = 0; i < 2; i++)
        {
            await using var run = dataSource.CreateCommand(script);
            await run.ExecuteNonQueryAsync();
        }

        // The installer sees every migration as applied, with the same checksums.
        Assert.Equal(0, await PostgresMigrator.MigrateAsync(dataSource, schema));
        Assert.Contains("user_api_usage", await NamesAsync(dataSource, schema));
    }

    [Theory]
    [InlineData("public; DROP TABLE x")]
    [InlineData("a\"b")]
    [InlineData("1abc")]
    [InlineData("")]
    public void GetCreationScript_BadSchemaName_Throws(string schema) =>
        Assert.ThrowsAny<ArgumentException>(() => PostgresSchema.GetCreationScript(schema));

    private static async Task<HashSet<string>> NamesAsync(NpgsqlDataSource dataSource, string schema)
    {
        await using var command = dataSource.CreateCommand("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1");
        command.Parameters.AddWithValue(schema);
        await using var reader = await command.ExecuteReaderAsync();
        var names = new HashSet<string>();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }
}
