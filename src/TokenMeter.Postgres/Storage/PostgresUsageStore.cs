using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using TokenMeter.Pricing;
using TokenMeter.Storage;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Ingest: binary COPY of the batch into a temporary staging table, then one statement that inserts
/// the rows not yet stored and upserts every rollup from the rows actually inserted (see
/// <see cref="PostgresSql"/>), all in one transaction.
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
        var connection = await context.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);
        using (var create = new NpgsqlCommand(context.Sql.CreateStaging, connection, transaction) { CommandTimeout = context.CommandTimeout })
        {
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        {
            var writer = await connection.BeginBinaryImportAsync(context.Sql.CopyStaging, cancellationToken).ConfigureAwait(false);
            await using var writerScope = writer.ConfigureAwait(false);
            writer.Timeout = TimeSpan.FromSeconds(context.CommandTimeout);
            foreach (var record in records)
            {
                await WriteRowAsync(writer, record, cancellationToken).ConfigureAwait(false);
            }

            await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        int inserted;
        using (var ingest = new NpgsqlCommand(context.Sql.Ingest, connection, transaction) { CommandTimeout = context.CommandTimeout })
        {
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
