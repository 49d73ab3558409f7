using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using TokenMeter.Pricing;
using TokenMeter.Storage;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Ingest, in one transaction: one row logging the batch in <c>usage_batches</c>, and binary COPY of the
/// batch straight into <c>user_api_usage</c>, each row tagged with the batch id; no rollup and no sum is
/// written per batch (see <see cref="PostgresSql"/>). A batch holding a record already stored fails the
/// COPY on the key and goes through the staging table instead, which inserts only the new rows and appends
/// their sums to <c>usage_pending_sums</c>. Both are folded into every rollup in the background
/// (<see cref="PostgresPendingFold"/>); until then the <c>usage_pending</c> view shows them to every reader.
/// </summary>
internal sealed class PostgresUsageStore(PostgresStoreContext context) : IUsageStore
{
    public async ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        foreach (var record in records)
        {
            ArgumentNullException.ThrowIfNull(record, nameof(records));
        }

        if (records.Count == 0)
        {
            return 0;
        }

        context.ThrowIfNotReady();
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)), cancellationToken).ConfigureAwait(false);
        try
        {
            return await InsertAsync(records, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.CheckViolation && ex.Message.Contains("no partition", StringComparison.Ordinal))
        {
            // Another instance's retention dropped a partition this instance thought existed.
            context.ForgetPartitions();
            await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)), cancellationToken).ConfigureAwait(false);
            return await InsertAsync(records, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<int> InsertAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        // Records of calls decided from budget slices leave their slices' holds in the transaction that stores them.
        var landing = context.Landings.Prepare(records);
        int inserted;
        try
        {
            inserted = await WriteAsync(records, null, context.Sql.CopyRaw, logBatch: true, null, landing, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            // The batch holds records already stored (a spool replay): the whole COPY rolled back;
            // store it again through the staging table, which skips them.
            inserted = await WriteAsync(records, context.Sql.CreateStaging, context.Sql.CopyStaging, logBatch: false, context.Sql.Ingest, landing, cancellationToken).ConfigureAwait(false);
        }

        if (landing is not null)
        {
            context.Landings.Stored(landing);
        }

        context.Fold.Appended(inserted);
        return inserted;
    }

    /// <summary>
    /// The usual path, one transaction: log the batch in <c>usage_batches</c> (its id, and the first and last time of its
    /// records) and binary COPY the records straight into <c>user_api_usage</c>, each tagged with the batch id; the fold
    /// sums them from there.
    /// </summary>
    /// <param name="records">The batch.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>The number of records stored (all of them: a stored one fails the COPY).</returns>
    internal Task<int> CopyAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken) =>
        WriteAsync(records, null, context.Sql.CopyRaw, logBatch: true, null, null, cancellationToken);

    /// <summary>
    /// One transaction: create the session's temporary table (when given), log the batch (when asked), COPY the records
    /// (tagged with the batch id when logged), run the statement (when given: a replay's ingest from the staging table),
    /// take the records of slice-decided calls off their slices' holds (when any; a replay's before its ingest, only
    /// those not stored yet), commit.
    /// </summary>
    private async Task<int> WriteAsync(
        IReadOnlyList<UsageRecord> records, string? createTemporary, string copyRecords, bool logBatch, string? statement, SliceLandings.Landing? landing, CancellationToken cancellationToken)
    {
        var connection = await context.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);
        if (createTemporary is not null)
        {
            using var create = new NpgsqlCommand(createTemporary, connection, transaction) { CommandTimeout = context.CommandTimeout };
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        long? batchId = null;
        if (logBatch)
        {
            var (first, last) = (records[0].CreatedAt, records[0].CreatedAt);
            foreach (var r in records)
            {
                first = r.CreatedAt < first ? r.CreatedAt : first;
                last = r.CreatedAt > last ? r.CreatedAt : last;
            }

            using var open = new NpgsqlCommand(context.Sql.OpenBatch, connection, transaction) { CommandTimeout = context.CommandTimeout };
            open.Parameters.Add(new NpgsqlParameter<DateTime> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = first.UtcDateTime });
            open.Parameters.Add(new NpgsqlParameter<DateTime> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = last.UtcDateTime });
            batchId = (long)(await open.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        {
            var writer = await connection.BeginBinaryImportAsync(copyRecords, cancellationToken).ConfigureAwait(false);
            await using var writerScope = writer.ConfigureAwait(false);
            writer.Timeout = TimeSpan.FromSeconds(context.CommandTimeout);
            foreach (var record in records)
            {
                await WriteRowAsync(writer, record, cancellationToken).ConfigureAwait(false);
                if (batchId is long id)
                {
                    await writer.WriteAsync(id, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
                }
            }

            await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        var inserted = records.Count;
        if (landing is { Assigned.Count: > 0 })
        {
            using var land = SliceLandings.Command(context.Sql.LandSliceRecords, landing, onlyNew: statement is not null, connection, transaction, context.CommandTimeout);
            await land.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (statement is not null)
        {
            using var ingest = new NpgsqlCommand(statement, connection, transaction) { CommandTimeout = context.CommandTimeout };
            inserted = (int)(await ingest.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return inserted;
    }

    internal static async ValueTask WriteRowAsync(NpgsqlBinaryImporter writer, UsageRecord r, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(r);
        await writer.StartRowAsync(cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.Id, NpgsqlDbType.Uuid, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.CreatedAt.UtcDateTime, NpgsqlDbType.TimestampTz, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.UserId, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.Endpoint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.Operation ?? UsageOperation.Other, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.RequestModel, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.Model, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.ServiceTier, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.InputTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.CachedInputTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.OutputTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.ReasoningTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.AudioInputTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.AudioOutputTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.TotalTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        if (r.CostUsd is decimal cost)
        {
            await writer.WriteAsync(cost, NpgsqlDbType.Numeric, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await writer.WriteNullAsync(cancellationToken).ConfigureAwait(false);
        }

        await WriteTextAsync(writer, r.PriceId, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(r.DurationMs, NpgsqlDbType.Double, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(UsageStatusNames.GetName(r.Status), NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
        if (r.HttpStatus is int http)
        {
            await writer.WriteAsync(http, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await writer.WriteNullAsync(cancellationToken).ConfigureAwait(false);
        }

        await writer.WriteAsync(r.Streaming, NpgsqlDbType.Boolean, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.SessionId, cancellationToken).ConfigureAwait(false);
        await WriteTextAsync(writer, r.ProblemId, cancellationToken).ConfigureAwait(false);
        if (r.Tags is { } tags)
        {
            await writer.WriteAsync(JsonSerializer.Serialize(tags, PostgresJsonContext.Default.IReadOnlyDictionaryStringString), NpgsqlDbType.Jsonb, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await writer.WriteNullAsync(cancellationToken).ConfigureAwait(false);
        }

        await writer.WriteAsync(r.CacheWriteTokens, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
        await writer.WriteAsync(CostSourceNames.Of(CostSourceNames.Effective(r)), NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
    }

    private static ValueTask WriteTextAsync(NpgsqlBinaryImporter writer, string? value, CancellationToken cancellationToken) =>
        value is null ? new ValueTask(writer.WriteNullAsync(cancellationToken)) : new ValueTask(writer.WriteAsync(value, NpgsqlDbType.Text, cancellationToken));
}
