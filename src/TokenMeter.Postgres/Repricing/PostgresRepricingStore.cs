using Npgsql;
using NpgsqlTypes;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Storage;
using TokenMeter.Pricing;
using TokenMeter.Repricing;

namespace TokenMeter.Postgres.Repricing;

/// <summary>
/// Re-pricing on PostgreSQL, in one transaction serialized by an advisory lock: read the range,
/// price each record, copy the changes into a temporary table, update the records from it, add
/// each change's cost difference to the pending sums when the record's batch is folded (the fold adds
/// it to every rollup row the record counts in), and store the re-pricing. Ingest only inserts, so it
/// runs alongside; folds wait (the fold lock is held throughout).
/// </summary>
internal sealed class PostgresRepricingStore(PostgresStoreContext context) : IUsageRepricingStore
{
    private string S => context.Quoted;

    public async ValueTask<RepricingResult> RepriceAsync(RepricingPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var tally = new RepricingTally(plan);
        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);

        await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(hashtext('tokenmeter.reprice.' || $1))", cancellationToken, context.Schema).ConfigureAwait(false);
        await context.Fold.LockAsync(connection, transaction, wait: true, cancellationToken).ConfigureAwait(false);

        var changes = new List<(UsageRecord Old, UsageRecord New)>();
        var onlyUnpriced = plan.Request.OnlyUnpriced ? " AND cost_usd IS NULL" : string.Empty;
        using (var select = new NpgsqlCommand($"SELECT {PostgresSql.Columns} FROM {S}.user_api_usage WHERE created_at >= $1 AND created_at < $2{onlyUnpriced} ORDER BY created_at, id", connection, transaction) { CommandTimeout = 0 })
        {
            select.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.TimestampTz, Value = plan.Request.From.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) });
            select.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.TimestampTz, Value = plan.Request.To.AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) });
            var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            var tags = new PostgresUsageQueries.TagCache();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var record = PostgresUsageQueries.ReadRecord(reader, tags);
                if (tally.Add(record) is { } repriced)
                {
                    changes.Add((record, repriced));
                }
            }
        }

        if (plan.Request.DryRun)
        {
            await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return tally.ToResult();
        }

        if (changes.Count > 0)
        {
            await ApplyAsync(connection, transaction, changes, cancellationToken).ConfigureAwait(false);
        }

        var entry = tally.ToEntry();
        await ExecuteAsync(
            connection,
            transaction,
            $"INSERT INTO {S}.tokenmeter_repricings (id, at, by_user, from_day, to_day, only_unpriced, records, old_cost_usd, new_cost_usd) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            cancellationToken,
            entry.Id,
            entry.At.UtcDateTime,
            entry.By,
            entry.From,
            entry.To,
            entry.OnlyUnpriced,
            entry.Records,
            entry.OldCostUsd,
            entry.NewCostUsd).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return tally.ToResult();
    }

    public async ValueTask<IReadOnlyList<RepricingEntry>> GetRepricingsAsync(int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var command = context.DataSource.CreateCommand(
            $"SELECT id, at, by_user, from_day, to_day, only_unpriced, records, old_cost_usd, new_cost_usd FROM {S}.tokenmeter_repricings ORDER BY at DESC, id DESC LIMIT $1");
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        command.CommandTimeout = context.CommandTimeout;
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var entries = new List<RepricingEntry>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            entries.Add(new RepricingEntry(
                reader.GetGuid(0),
                new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc)),
                reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.GetFieldValue<DateOnly>(3),
                reader.GetFieldValue<DateOnly>(4),
                reader.GetBoolean(5),
                reader.GetInt64(6),
                reader.GetDecimal(7),
                reader.GetDecimal(8)));
        }

        return entries;
    }

    private async Task ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, List<(UsageRecord Old, UsageRecord New)> changes, CancellationToken cancellationToken)
    {
        await ExecuteAsync(
            connection,
            transaction,
            """
            CREATE TEMP TABLE tokenmeter_reprice (
                id uuid NOT NULL, created_at timestamptz NOT NULL, user_id text COLLATE "C" NULL, day date NOT NULL,
                endpoint text COLLATE "C" NULL, model text COLLATE "C" NULL, delta numeric NOT NULL,
                cost_usd numeric NULL, price_id text NULL, cost_source text NOT NULL) ON COMMIT DROP
            """,
            cancellationToken).ConfigureAwait(false);

        {
            var writer = await connection.BeginBinaryImportAsync(
                "COPY pg_temp.tokenmeter_reprice (id, created_at, user_id, day, endpoint, model, delta, cost_usd, price_id, cost_source) FROM STDIN (FORMAT BINARY)",
                cancellationToken).ConfigureAwait(false);
            await using var writerScope = writer.ConfigureAwait(false);
            foreach (var (old, repriced) in changes)
            {
                await writer.StartRowAsync(cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(old.Id, NpgsqlDbType.Uuid, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(old.CreatedAt.UtcDateTime, NpgsqlDbType.TimestampTz, cancellationToken).ConfigureAwait(false);
                await WriteAsync(writer, old.UserId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(DateOnly.FromDateTime(old.CreatedAt.UtcDateTime), NpgsqlDbType.Date, cancellationToken).ConfigureAwait(false);
                await WriteAsync(writer, old.Endpoint, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await WriteAsync(writer, old.Model, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync((repriced.CostUsd ?? 0m) - (old.CostUsd ?? 0m), NpgsqlDbType.Numeric, cancellationToken).ConfigureAwait(false);
                await WriteAsync(writer, repriced.CostUsd, NpgsqlDbType.Numeric, cancellationToken).ConfigureAwait(false);
                await WriteAsync(writer, repriced.PriceId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(CostSourceNames.Of(repriced.CostSource), NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
            }

            await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        // Each rollup row gets the sum of the differences of the records it counts (tokens and calls do not change):
        // appended to the pending sums (calls and tokens 0), which the fold adds to every rollup like ingest's sums. A
        // record of a batch not folded yet gets none: the fold (and until then the usage_pending view) reads its new
        // cost from the raw row. The fold lock, held since the start, keeps a fold from folding a batch in between.
        await ExecuteAsync(
            connection,
            transaction,
            $"""
            WITH changed AS (
                UPDATE {S}.user_api_usage u SET cost_usd = c.cost_usd, price_id = c.price_id, cost_source = c.cost_source
                FROM pg_temp.tokenmeter_reprice c WHERE u.created_at = c.created_at AND u.id = c.id
                RETURNING c.user_id, c.day, c.endpoint, c.model, c.delta, u.batch_id)
            INSERT INTO {S}.usage_pending_sums (user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
            SELECT user_id, day, endpoint, model, 0, 0, 0, 0, 0, 0, sum(delta), 0 FROM changed
            WHERE batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM {S}.usage_batches b WHERE b.id = changed.batch_id)
            GROUP BY 1, 2, 3, 4
            """,
            cancellationToken).ConfigureAwait(false);
    }

    private async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken, params object?[] values)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = context.CommandTimeout };
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }

        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static Task WriteAsync<T>(NpgsqlBinaryImporter writer, T? value, NpgsqlDbType type, CancellationToken cancellationToken) =>
        value is null ? writer.WriteNullAsync(cancellationToken) : writer.WriteAsync(value, type, cancellationToken);
}
