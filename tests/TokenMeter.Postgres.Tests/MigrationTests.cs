using Npgsql;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Schema;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;
using TokenMeter.Testing;
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

    [Fact]
    public async Task Migration3_ExistingDatabase_AddsPricingColumnsWithoutRewritingOldRows()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = "m_" + Guid.NewGuid().ToString("N")[..10];
        Assert.Equal(2, await PostgresMigrator.MigrateToAsync(dataSource, schema, 2));
        await using (var seed = dataSource.CreateCommand($"""
            SELECT "{schema}".tokenmeter_create_partition(date '2026-03-01');
            INSERT INTO "{schema}".user_api_usage (id, created_at, user_id, operation, model, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, price_id, status)
            VALUES ('0195a1b2-0000-7000-8000-000000000001', '2026-03-15 08:00:00+00', 'alice', 'chat', 'gpt-4o', 1000, 200, 500, 1500, 0.0075, 'gpt-4o/standard/2024-08-06', 'ok'),
                   ('0195a1b2-0000-7000-8000-000000000002', '2026-03-15 09:00:00+00', 'bob', 'chat', 'house-model', 10, 0, 5, 15, NULL, NULL, 'ok');
            INSERT INTO "{schema}".usage_user_total (user_id, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, first_call_at, last_call_at)
            VALUES ('alice', 1, 1000, 200, 500, 0, 1500, 0.0075, '2026-03-15 08:00:00+00', '2026-03-15 08:00:00+00');
            """))
        {
            await seed.ExecuteNonQueryAsync();
        }

        var before = await RowVersionsAsync(dataSource, schema);

        Assert.Equal(PostgresMigration.All.Count - 2, await PostgresMigrator.MigrateAsync(dataSource, schema));

        // Same physical rows (ctid) written by the same transactions (xmin): nothing was rewritten.
        Assert.Equal(before, await RowVersionsAsync(dataSource, schema));
        await using var read = dataSource.CreateCommand($"SELECT user_id, cache_write_tokens, cost_source FROM \"{schema}\".user_api_usage ORDER BY created_at");
        await using var reader = await read.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(("alice", 0L, true), (reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2)));
        Assert.True(await reader.ReadAsync());
        Assert.Equal(("bob", 0L, true), (reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2)));
        await using var view = dataSource.CreateCommand($"SELECT cache_write_tokens FROM \"{schema}\".user_usage_summary WHERE user_id = 'alice'");
        Assert.Equal(0L, await view.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Migration4_ExistingDatabase_BackfillsAllTimeUserEndpointTotalsFromTheMonths()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = await SchemaAtAsync(dataSource, 3);

        // What ingest wrote before migration 4: two months of one pair, a null endpoint and model, another user.
        await ExecuteAsync(dataSource, $$"""
            INSERT INTO "{{schema}}".usage_user_endpoint_month (user_id, month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-01-01', '/api/chat', 'gpt-4o', 2, 100, 10, 50, 0, 150, 0.0010, 5),
                   ('alice', '2026-02-01', '/api/chat', 'gpt-4o', 3, 200, 20, 60, 7, 260, 0.0025, 0),
                   ('alice', '2026-02-01', NULL, NULL, 1, 5, 0, 5, 0, 10, 0, 0),
                   ('alice', '2026-03-01', NULL, NULL, 1, 6, 0, 4, 0, 10, 0.0001, 0),
                   ('bob', '2026-03-01', '/api/chat', 'gpt-4o', 4, 40, 0, 40, 0, 80, 0.004, 1);
            """);

        Assert.Equal(1, await PostgresMigrator.MigrateToAsync(dataSource, schema, 4));

        await using var read = dataSource.CreateCommand(
            $"SELECT r FROM (SELECT user_id || '|' || coalesce(endpoint, '-') || '|' || coalesce(model, '-') || '|' || concat_ws(',', calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens) AS r FROM \"{schema}\".usage_user_endpoint_total) x ORDER BY r COLLATE \"C\"");
        await using var reader = await read.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        Assert.Equal(["alice|-|-|2,11,0,9,0,20,0.0001,0", "alice|/api/chat|gpt-4o|5,300,30,110,7,410,0.0035,5", "bob|/api/chat|gpt-4o|4,40,0,40,0,80,0.004,1"], rows);
    }

    [Fact]
    public async Task Migration8_RowsPendingUnder7_AreFoldedIntoTheUserEndpointRollupsOnlyAndTheDayGrainGoes()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = "m_" + Guid.NewGuid().ToString("N")[..10];
        Assert.Equal(7, await PostgresMigrator.MigrateToAsync(dataSource, schema, 7));

        // Under 0007 a batch upserted the per-user rollups and left its user×endpoint×model sums pending:
        // alice's March is folded already (month and all-time rows), two more groups wait (one of them
        // on alice's folded pair), and usage_user_total counts all three.
        await using (var seed = dataSource.CreateCommand($$"""
            INSERT INTO "{{schema}}".usage_user_endpoint_month (user_id, month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-03-01', '/api/chat', 'gpt-4o', 2, 100, 0, 50, 0, 150, 0.0010, 0);
            INSERT INTO "{{schema}}".usage_user_endpoint_total (user_id, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '/api/chat', 'gpt-4o', 2, 100, 0, 50, 0, 150, 0.0010, 0);
            INSERT INTO "{{schema}}".usage_user_endpoint_pending (user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-03-20', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0001, 0),
                   ('bob', '2026-04-02', NULL, NULL, 3, 30, 0, 30, 0, 60, 0.0030, 0);
            INSERT INTO "{{schema}}".usage_user_total (user_id, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, first_call_at, last_call_at)
            VALUES ('alice', 3, 110, 0, 55, 0, 165, 0.0011, '2026-03-10 08:00:00+00', '2026-03-20 08:00:00+00'),
                   ('bob', 3, 30, 0, 30, 0, 60, 0.0030, '2026-04-02 08:00:00+00', '2026-04-02 09:00:00+00');
            """))
        {
            await seed.ExecuteNonQueryAsync();
        }

        Assert.Equal(1, await PostgresMigrator.MigrateToAsync(dataSource, schema, 8));

        Assert.Equal(
            ["alice|2026-03-01|/api/chat|gpt-4o|3,0.0011", "bob|2026-04-01|-|-|3,0.0030"],
            await RowsAsync(dataSource, $"SELECT user_id || '|' || month || '|' || coalesce(endpoint, '-') || '|' || coalesce(model, '-') || '|' || calls || ',' || cost_usd FROM \"{schema}\".usage_user_endpoint_month"));
        Assert.Equal(
            ["alice|/api/chat|gpt-4o|3,0.0011", "bob|-|-|3,0.0030"],
            await RowsAsync(dataSource, $"SELECT user_id || '|' || coalesce(endpoint, '-') || '|' || coalesce(model, '-') || '|' || calls || ',' || cost_usd FROM \"{schema}\".usage_user_endpoint_total"));

        // Nothing left pending (so the per-user rollups are not counted twice by the new fold), and the day grain is gone.
        Assert.Empty(await RowsAsync(dataSource, $"SELECT user_id FROM \"{schema}\".usage_pending"));
        var names = await NamesAsync(dataSource, schema);
        Assert.DoesNotContain("usage_user_endpoint_day", names);
        Assert.DoesNotContain("usage_user_endpoint_pending", names);
        Assert.Equal(["alice|3", "bob|3"], await RowsAsync(dataSource, $"SELECT user_id || '|' || total_calls FROM \"{schema}\".user_usage_summary"));
    }

    [Fact]
    public async Task Migration10_DropsTheAllTimeUserEndpointTable_AndTheUserDetailSumsTheMonthsWithThePendingRows()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = await SchemaAtAsync(dataSource, 9);

        // Under 0009: two folded months of alice's pair, a folded month with a null endpoint and model, their all-time
        // twins, and one group still pending on the pair.
        await ExecuteAsync(dataSource, $$"""
            INSERT INTO "{{schema}}".usage_user_endpoint_month (user_id, month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-09-01', '/api/chat', 'gpt-4o', 2, 100, 10, 50, 0, 150, 0.0010, 5),
                   ('alice', '2026-10-01', '/api/chat', 'gpt-4o', 3, 200, 20, 60, 7, 260, 0.0025, 0),
                   ('alice', '2026-10-01', NULL, NULL, 1, 5, 0, 5, 0, 10, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_user_endpoint_total (user_id, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '/api/chat', 'gpt-4o', 5, 300, 30, 110, 7, 410, 0.0035, 5),
                   ('alice', NULL, NULL, 1, 5, 0, 5, 0, 10, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_user_total (user_id, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, first_call_at, last_call_at, cache_write_tokens)
            VALUES ('alice', 6, 305, 30, 115, 7, 420, 0.0036, '2026-09-02 08:00:00+00', '2026-10-20 08:00:00+00', 5);
            INSERT INTO "{{schema}}".usage_pending (user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens, first_at, last_at)
            VALUES ('alice', '2026-11-03', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0002, 0, '2026-11-03 08:00:00+00', '2026-11-03 08:00:00+00');
            """);

        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.Schema = schema);
        Assert.Equal(PostgresMigration.Latest, await h.ScalarAsync<int>("SELECT max(version) FROM {s}.tokenmeter_migrations"));
        Assert.DoesNotContain("usage_user_endpoint_total", await NamesAsync(dataSource, schema));
        Assert.Contains("fillfactor=50", await RowsAsync(dataSource, $"SELECT unnest(reloptions) FROM pg_class WHERE oid = '\"{schema}\".usage_user_endpoint_month'::regclass"));

        var detail = await h.Queries.GetUserUsageAsync("alice", new DateOnly(2026, 11, 24));
        Assert.Equal(
            ["-|-|1,5,10,0.0001", "/api/chat|gpt-4o|6,310,425,0.0037"],
            detail!.ByEndpoint.Select(e => FormattableString.Invariant($"{e.Endpoint ?? "-"}|{e.Model ?? "-"}|{e.Figures.Calls},{e.Figures.InputTokens},{e.Figures.TotalTokens},{e.Figures.CostUsd}")).Order(StringComparer.Ordinal));
        Assert.Equal(detail.Summary.Figures, UsageFigures.Sum(detail.ByEndpoint.Select(e => e.Figures)));

        // Folded, the month rows hold the pending group, and the detail reads the same.
        Assert.Equal(1L, await h.FoldAsync());
        Assert.Equal(detail.ByEndpoint, (await h.Queries.GetUserUsageAsync("alice", new DateOnly(2026, 11, 24)))!.ByEndpoint);
    }

    [Fact]
    public async Task Migration11_RowsPendingUnder10_StayCountedAndAreFoldedOnce_AndTheViewsAddUnfoldedBatches()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = await SchemaAtAsync(dataSource, 10);

        // Under 0010: alice's first call is folded (raw row and rollups), her second and bob's call are stored with their
        // sums still pending.
        await ExecuteAsync(dataSource, $$"""
            SELECT "{{schema}}".tokenmeter_create_partition('2026-11-01');
            INSERT INTO "{{schema}}".user_api_usage (id, created_at, user_id, endpoint, operation, model, input_tokens, output_tokens, total_tokens, cost_usd, status)
            VALUES (gen_random_uuid(), '2026-11-02 08:00:00+00', 'alice', '/api/chat', 'chat', 'gpt-4o', 10, 5, 15, 0.0001, 'ok'),
                   (gen_random_uuid(), '2026-11-03 08:00:00+00', 'alice', '/api/chat', 'chat', 'gpt-4o', 20, 10, 30, 0.0002, 'ok'),
                   (gen_random_uuid(), '2026-11-03 09:00:00+00', 'bob', NULL, 'chat', NULL, 30, 30, 60, 0.0030, 'ok');
            INSERT INTO "{{schema}}".usage_user_endpoint_month (user_id, month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-11-01', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_user_day (user_id, day, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-11-02', 1, 10, 0, 5, 0, 15, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_user_month (user_id, month, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-11-01', 1, 10, 0, 5, 0, 15, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_user_total (user_id, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, first_call_at, last_call_at, cache_write_tokens)
            VALUES ('alice', 1, 10, 0, 5, 0, 15, 0.0001, '2026-11-02 08:00:00+00', '2026-11-02 08:00:00+00', 0);
            INSERT INTO "{{schema}}".usage_endpoint_day (day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('2026-11-02', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_endpoint_month (month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('2026-11-01', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0001, 0);
            INSERT INTO "{{schema}}".usage_active_day (day, active_users) VALUES ('2026-11-02', 1);
            INSERT INTO "{{schema}}".usage_active_month (month, active_users) VALUES ('2026-11-01', 1);
            INSERT INTO "{{schema}}".usage_pending (user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens, first_at, last_at)
            VALUES ('alice', '2026-11-03', '/api/chat', 'gpt-4o', 1, 20, 0, 10, 0, 30, 0.0002, 0, '2026-11-03 08:00:00+00', '2026-11-03 08:00:00+00'),
                   ('bob', '2026-11-03', NULL, NULL, 1, 30, 0, 30, 0, 60, 0.0030, 0, '2026-11-03 09:00:00+00', '2026-11-03 09:00:00+00');
            """);

        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => { o.Schema = schema; o.FoldEveryRecords = 1_000_000; }, now: new DateTimeOffset(2026, 11, 4, 12, 0, 0, TimeSpan.Zero));
        Assert.Equal(PostgresMigration.Latest, await h.ScalarAsync<int>("SELECT max(version) FROM {s}.tokenmeter_migrations"));

        // The sums pending at the upgrade are still counted (now kept in usage_pending_sums, shown by the usage_pending view)...
        Assert.Equal(2L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_pending_sums"));
        Assert.Equal(["alice|2|0.0003", "bob|1|0.0030"], await h.StringsAsync("SELECT user_id || '|' || total_calls || '|' || total_cost_usd FROM {s}.user_usage_summary ORDER BY 1"));

        // ...and so is a batch stored after it, not folded yet: every summary view adds its raw rows.
        var day = new DateTimeOffset(2026, 11, 4, 10, 0, 0, TimeSpan.Zero);
        Assert.Equal(2, await h.Store.AppendAsync([Records.Make(day, userId: "alice", endpoint: "/api/chat", model: "gpt-4o", cost: 0.0004m), Records.Make(day.AddMinutes(1), userId: "carol", cost: 0.0005m)]));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_batches"));
        var expectedUsers = new[] { "alice|3|0.0007", "bob|1|0.0030", "carol|1|0.0005" };
        Assert.Equal(expectedUsers, await h.StringsAsync("SELECT user_id || '|' || total_calls || '|' || total_cost_usd FROM {s}.user_usage_summary ORDER BY 1"));
        const string Views = """
            SELECT 'd|' || date || '|' || calls || '|' || cost_usd || '|' || active_users FROM {s}.daily_usage_summary
            UNION ALL SELECT 'm|' || month || '|' || calls || '|' || cost_usd || '|' || active_users FROM {s}.monthly_usage_summary
            UNION ALL SELECT 'e|' || coalesce(endpoint, '-') || '|' || calls || '|' || total_cost_usd FROM {s}.endpoint_usage_summary
            ORDER BY 1
            """;
        var views = await h.StringsAsync(Views);
        Assert.Equal(
            ["d|2026-11-02|1|0.0001|1", "d|2026-11-03|2|0.0032|2", "d|2026-11-04|2|0.0009|2", "e|-|1|0.0030", "e|/api/analyze|1|0.0005", "e|/api/chat|3|0.0007", "m|2026-11|5|0.0042|3"],
            views);
        var stats = await h.Queries.GetStatsAsync(new DateOnly(2026, 11, 4));
        Assert.Equal((5L, 0.0042m, 3L, 2L), (stats.Figures.Calls, stats.Figures.CostUsd, stats.ActiveUsers, stats.Today.ActiveUsers));

        // One fold takes the old sums and the new batch; nothing is left unfolded and every figure reads the same.
        Assert.True(await h.FoldAsync() > 0);
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_pending"));
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_batches"));
        Assert.Equal(expectedUsers, await h.StringsAsync("SELECT user_id || '|' || total_calls || '|' || total_cost_usd FROM {s}.user_usage_summary ORDER BY 1"));
        Assert.Equal(views, await h.StringsAsync(Views));
        Assert.Equal(0L, await h.FoldAsync());
        Assert.Equal(views, await h.StringsAsync(Views));
    }

    [Fact]
    public async Task Migration15_ExistingLines_ReadAsWrittenBeforeAnyLaterSnapshot_WithoutRewritingThem()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = await SchemaAtAsync(dataSource, 14);
        await ExecuteAsync(dataSource, $"""
            INSERT INTO "{schema}".usage_user_endpoint_month (user_id, month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('alice', '2026-11-01', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0001, 0), ('bob', '2026-11-01', NULL, NULL, 2, 20, 0, 10, 0, 30, 0.0002, 0)
            """);
        var lines = $"SELECT ctid::text || '/' || xmin::text FROM \"{schema}\".usage_user_endpoint_month";
        var before = await RowsAsync(dataSource, lines);
        await using (var snapshot = dataSource.CreateCommand("SELECT pg_current_snapshot()::text"))
        {
            var taken = (string)(await snapshot.ExecuteScalarAsync())!;
            Assert.Equal(PostgresMigration.All.Count - 14, await PostgresMigrator.MigrateAsync(dataSource, schema));

            // Not rewritten; both lines carry the migration's transaction: written after a snapshot taken before it, seen
            // by any snapshot taken after it.
            Assert.Equal(before, await RowsAsync(dataSource, lines));
            var seen = $"SELECT pg_visible_in_snapshot(written_by, $1::pg_snapshot)::text || '|' || pg_visible_in_snapshot(written_by, pg_current_snapshot())::text FROM \"{schema}\".usage_user_endpoint_month";
            await using var read = dataSource.CreateCommand($"SELECT r FROM ({seen}) AS x (r) GROUP BY r");
            read.Parameters.AddWithValue(taken);
            Assert.Equal("false|true", await read.ExecuteScalarAsync());
        }

        // An update that does not set written_by gets it from the trigger; one that does keeps its own.
        await ExecuteAsync(dataSource, $"UPDATE \"{schema}\".usage_user_endpoint_month SET calls = calls + 1 WHERE user_id = 'alice'");
        await ExecuteAsync(dataSource, $"UPDATE \"{schema}\".usage_user_endpoint_month SET calls = calls + 1, written_by = '7' WHERE user_id = 'bob'");
        Assert.Equal(
            ["alice|2|false", "bob|3|true"],
            await RowsAsync(dataSource, $"SELECT user_id || '|' || calls || '|' || (written_by = '7')::text FROM \"{schema}\".usage_user_endpoint_month"));
    }

    [Fact]
    public async Task Migration16_BackfillsTheAllTimeEndpointTotalsFromTheMonths_AndTheAllTimeReadsAgreeBeforeAndAfter()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = await SchemaAtAsync(dataSource, 15);

        // Under 0015: three months of one pair, a null endpoint and model in two months, a pair with a null model; pending, a
        // re-pricing's difference on the first pair (cost only) and a group of a pair with no month yet.
        await ExecuteAsync(dataSource, $$"""
            {{MonthRows(schema)}};
            INSERT INTO "{{schema}}".usage_pending_sums (user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens, first_at, last_at)
            VALUES ('alice', '2026-11-02', '/api/chat', 'gpt-4o', 0, 0, 0, 0, 0, 0, 0.0100, 0, NULL, NULL),
                   (NULL, '2026-11-03', '/api/new', 'o4-mini', 2, 20, 0, 10, 3, 30, 0.0020, 0, '2026-11-03 08:00:00+00', '2026-11-03 09:00:00+00');
            """);
        const string Summary = "SELECT concat_ws('|', coalesce(endpoint, '-'), coalesce(model, '-'), calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, total_cost_usd, cache_write_tokens) FROM {0}.endpoint_usage_summary";
        var summary = string.Format(System.Globalization.CultureInfo.InvariantCulture, Summary, $"\"{schema}\"");
        var before = await RowsAsync(dataSource, summary);
        Assert.Equal(["-|-|2|11|0|9|20|0.0001|0", "/api/chat|-|4|40|0|40|80|0.004|1", "/api/chat|gpt-4o|9|700|30|260|1000|0.0185|6", "/api/new|o4-mini|2|20|0|10|30|0.0020|0"], before);

        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => { o.Schema = schema; o.FoldEveryRecords = 1_000_000; });
        Assert.Equal(PostgresMigration.Latest, await h.ScalarAsync<int>("SELECT max(version) FROM {s}.tokenmeter_migrations"));

        // One all-time row per endpoint and model of the months (the pending rows stay pending), with their sums.
        Assert.Equal(3L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_endpoint_total"));
        Assert.Equal(0L, await AllTimeApartFromMonthsAsync(h));
        Assert.Contains("fillfactor=50", await RowsAsync(dataSource, $"SELECT unnest(reloptions) FROM pg_class WHERE oid = '\"{schema}\".usage_endpoint_total'::regclass"));

        // The view (same columns), the route and the stats' all-time figures read what the months gave before the upgrade.
        Assert.Equal(before, await RowsAsync(dataSource, summary));
        var endpoints = await h.Queries.GetEndpointUsageAsync();
        Assert.Equal(before, endpoints.Select(Line).Order(StringComparer.Ordinal));
        Assert.Equal(UsageFigures.Sum(endpoints.Select(e => e.Figures)), (await h.Queries.GetStatsAsync(new DateOnly(2026, 11, 24))).Figures);

        // The next fold adds the pending rows to the all-time rows once; every read stays the same.
        Assert.Equal(2L, await h.FoldAsync());
        Assert.Equal(0L, await AllTimeApartFromMonthsAsync(h));
        Assert.Equal(4L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_endpoint_total"));
        Assert.Equal(before, await RowsAsync(dataSource, summary));
        Assert.Equal(endpoints, await h.Queries.GetEndpointUsageAsync());
        Assert.Equal(UsageFigures.Sum(endpoints.Select(e => e.Figures)), (await h.Queries.GetStatsAsync(new DateOnly(2026, 11, 24))).Figures);

        static string Line(EndpointUsage e) => FormattableString.Invariant(
            $"{e.Endpoint ?? "-"}|{e.Model ?? "-"}|{e.Figures.Calls}|{e.Figures.InputTokens}|{e.Figures.CachedInputTokens}|{e.Figures.OutputTokens}|{e.Figures.TotalTokens}|{e.Figures.CostUsd}|{e.Figures.CacheWriteTokens}");
    }

    [Fact]
    public async Task Migration16_WaitsForAFoldInFlight_AndCarriesAnOlderInstancesFoldsAndHandEditsAfterIt()
    {
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        var schema = await SchemaAtAsync(dataSource, 15);
        await ExecuteAsync(dataSource, MonthRows(schema));

        // An instance of the previous version is folding: it holds the fold lock and has added to the months, not committed yet.
        var olderFold = $$"""
            INSERT INTO "{{schema}}".usage_endpoint_month AS t (month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            VALUES ('2026-11-01', '/api/chat', 'gpt-4o', 1, 10, 0, 5, 0, 15, 0.0001, 0), ('2026-11-01', NULL, 'o4-mini', 2, 20, 0, 10, 0, 30, 0.0002, 0)
            ON CONFLICT (month, endpoint, model) DO UPDATE SET
                calls = t.calls + excluded.calls, input_tokens = t.input_tokens + excluded.input_tokens, cached_input_tokens = t.cached_input_tokens + excluded.cached_input_tokens,
                output_tokens = t.output_tokens + excluded.output_tokens, reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens, total_tokens = t.total_tokens + excluded.total_tokens,
                cost_usd = t.cost_usd + excluded.cost_usd, cache_write_tokens = t.cache_write_tokens + excluded.cache_write_tokens
            """;
        await using (var folding = await dataSource.OpenConnectionAsync())
        {
            await using var transaction = await folding.BeginTransactionAsync();
            await using (var command = new NpgsqlCommand($"SELECT pg_advisory_xact_lock(hashtext('tokenmeter.fold.{schema}')); {olderFold}", folding, transaction))
            {
                await command.ExecuteNonQueryAsync();
            }

            // The upgrade waits for the fold's lock before it copies the months; the fold commits, and its sums are in the copy.
            var upgrade = Task.Run(() => PostgresMigrator.MigrateAsync(dataSource, schema));
            await Eventually.TrueAsync(
                async _ => upgrade.IsCompleted || await ScalarAsync<long>(dataSource, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") > 0,
                what: "the upgrade waits for the fold's lock");
            Assert.False(upgrade.IsCompleted);
            await transaction.CommitAsync();
            Assert.Equal(1, await upgrade);
        }

        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => { o.Schema = schema; o.FoldEveryRecords = 1_000_000; });
        Assert.Equal(0L, await AllTimeApartFromMonthsAsync(h));
        Assert.Equal(4L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_endpoint_total"));

        // After the upgrade the older instance folds again (it knows nothing of the all-time rows), and the months are corrected
        // by hand (a row moved to another pair, a pair deleted): the trigger carries each to the all-time rows.
        await h.ExecuteAsync(olderFold);
        Assert.Equal(0L, await AllTimeApartFromMonthsAsync(h));
        await h.ExecuteAsync("UPDATE {s}.usage_endpoint_month SET model = 'gpt-4o-mini', cost_usd = cost_usd * 2 WHERE month = '2026-03-01' AND endpoint = '/api/chat' AND model IS NULL");
        await h.ExecuteAsync("DELETE FROM {s}.usage_endpoint_month WHERE endpoint IS NULL");
        Assert.Equal(0L, await AllTimeApartFromMonthsAsync(h));
        Assert.Equal(["/api/chat|gpt-4o", "/api/chat|gpt-4o-mini"], await h.StringsAsync("SELECT endpoint || '|' || model FROM {s}.usage_endpoint_total ORDER BY 1"));

        // This version's fold adds to the all-time rows itself, once; the reads equal the months' sums.
        var at = new DateTimeOffset(2026, 11, 20, 9, 0, 0, TimeSpan.Zero);
        Assert.Equal(3, await h.Store.AppendAsync([Records.Make(at, endpoint: "/api/chat", model: "gpt-4o"), Records.Make(at, userId: null, endpoint: null, model: null), Records.Make(at.AddHours(1), model: "gpt-4o-mini", cost: 0.5m)]));
        Assert.Equal(3L, await h.FoldAsync());
        Assert.Equal(0L, await AllTimeApartFromMonthsAsync(h));
        Assert.Equal(
            await h.StringsAsync("SELECT r FROM (SELECT concat_ws('|', coalesce(endpoint, '-'), coalesce(model, '-'), sum(calls), sum(cost_usd)) FROM {s}.usage_endpoint_month GROUP BY endpoint, model) x (r) ORDER BY r COLLATE \"C\""),
            (await h.Queries.GetEndpointUsageAsync()).Select(e => FormattableString.Invariant($"{e.Endpoint ?? "-"}|{e.Model ?? "-"}|{e.Figures.Calls}|{e.Figures.CostUsd}")).Order(StringComparer.Ordinal));

        // Emptying the months by hand (a rebuild) empties the all-time rows.
        await h.ExecuteAsync("TRUNCATE {s}.usage_endpoint_month");
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_endpoint_total"));
    }

    [Fact]
    public async Task InstalledByHand_AnAppRoleWithTheDocumentedPrivileges_StoresFoldsAndReads()
    {
        // The README's list ("Installing the schema yourself"): USAGE on the schema, the four table privileges, USAGE on
        // the day versions' sequence (EXECUTE on the functions is PUBLIC's by default); the partitions created ahead.
        await using var owner = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var role = "tm_app_" + Guid.NewGuid().ToString("N")[..10];
        await owner.ExecuteAsync($$"""
            CREATE ROLE {{role}} LOGIN;
            GRANT USAGE ON SCHEMA {s} TO {{role}};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {{role}};
            GRANT USAGE ON SEQUENCE {s}.usage_day_version_seq TO {{role}};
            SELECT {s}.tokenmeter_create_partition('2026-11-01');
            """);
        try
        {
            var connection = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Username = role, Pooling = false }.ConnectionString;
            await using (var app = new PostgresStoreContext(NpgsqlDataSource.Create(connection), ownsDataSource: true, new PostgresStoreOptions { Schema = owner.Context.Schema }, owner.Time))
            {
                app.MarkReady();
                var store = new PostgresUsageStore(app);
                var queries = new PostgresUsageQueries(app);
                var fresh = new PostgresUsageQueries(owner.Context) { KeepFinishedDays = false };
                var at = new DateTimeOffset(2026, 11, 20, 9, 0, 0, TimeSpan.Zero);
                var (first, last) = (new DateOnly(2026, 11, 1), new DateOnly(2026, 11, 30));

                // The second round reads the month's lines written since the first (the kept lines' snapshot).
                for (var i = 0; i < 2; i++)
                {
                    Assert.Equal(2, await store.AppendAsync([Records.Make(at.AddHours(i), userId: "alice", cost: 0.25m), Records.Make(at.AddHours(i), userId: "bob", model: "m" + i, cost: 0.5m)]));
                    await app.Fold.WhenIdleAsync();
                    Assert.Equal(2L, await app.Fold.FoldAsync() ?? 0);
                    Assert.Equal(await fresh.GetUserEndpointUsageAsync(first, last), await queries.GetUserEndpointUsageAsync(first, last));
                    Assert.Equal(await fresh.GetUserDailyUsageAsync(first, last), await queries.GetUserDailyUsageAsync(first, last));
                }
            }
        }
        finally
        {
            await owner.ExecuteAsync($"DROP OWNED BY {role}; DROP ROLE {role}");
        }
    }

    /// <summary>A fresh schema migrated up to <paramref name="version"/>.</summary>
    private static async Task<string> SchemaAtAsync(NpgsqlDataSource dataSource, int version)
    {
        var schema = "m_" + Guid.NewGuid().ToString("N")[..10];
        Assert.Equal(version, await PostgresMigrator.MigrateToAsync(dataSource, schema, version));
        return schema;
    }

    /// <summary>usage_endpoint_month rows as 0015 left them: three months of one pair, a null endpoint and model in two months, a pair with a null model.</summary>
    private static string MonthRows(string schema) => $"""
        INSERT INTO "{schema}".usage_endpoint_month (month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
        VALUES ('2026-01-01', '/api/chat', 'gpt-4o', 2, 100, 10, 50, 0, 150, 0.0010, 5),
               ('2026-02-01', '/api/chat', 'gpt-4o', 3, 200, 20, 60, 7, 260, 0.0025, 0),
               ('2026-10-01', '/api/chat', 'gpt-4o', 4, 400, 0, 150, 0, 590, 0.0050, 1),
               ('2026-02-01', NULL, NULL, 1, 5, 0, 5, 0, 10, 0, 0),
               ('2026-03-01', NULL, NULL, 1, 6, 0, 4, 0, 10, 0.0001, 0),
               ('2026-03-01', '/api/chat', NULL, 4, 40, 0, 40, 0, 80, 0.004, 1)
        """;

    /// <summary>How many rows of usage_endpoint_total differ from the GROUP BY endpoint, model of usage_endpoint_month, both ways.</summary>
    private static Task<long> AllTimeApartFromMonthsAsync(PostgresStoreHarness h)
    {
        const string Columns = "endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens";
        const string Months = "SELECT endpoint, model, sum(calls)::bigint, sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint, sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint, sum(total_tokens)::bigint, sum(cost_usd), sum(cache_write_tokens)::bigint FROM {s}.usage_endpoint_month GROUP BY endpoint, model";
        const string Totals = $"SELECT {Columns} FROM {{s}}.usage_endpoint_total";
        return h.ScalarAsync<long>($"SELECT count(*) FROM (({Months} EXCEPT {Totals}) UNION ALL ({Totals} EXCEPT {Months})) x");
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<List<string>> RowsAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand($"SELECT r FROM ({sql}) AS x (r) ORDER BY r COLLATE \"C\"");
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    [Theory]
    [InlineData("public; DROP TABLE x")]
    [InlineData("a\"b")]
    [InlineData("1abc")]
    [InlineData("")]
    public void GetCreationScript_BadSchemaName_Throws(string schema) =>
        Assert.ThrowsAny<ArgumentException>(() => PostgresSchema.GetCreationScript(schema));

    private static async Task<List<string>> RowVersionsAsync(NpgsqlDataSource dataSource, string schema)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT ctid::text || '/' || xmin::text FROM \"{schema}\".user_api_usage UNION ALL SELECT ctid::text || '/' || xmin::text FROM \"{schema}\".usage_user_total ORDER BY 1");
        await using var reader = await command.ExecuteReaderAsync();
        var versions = new List<string>();
        while (await reader.ReadAsync())
        {
            versions.Add(reader.GetString(0));
        }

        return versions;
    }

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
