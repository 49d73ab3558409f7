using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using TokenMeter.Storage;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Ingest: one statement per batch that receives the batch as one binary array per column, inserts
/// the rows not yet stored and upserts every rollup from the rows actually inserted, atomically
/// (see <see cref="PostgresSql"/>). <see cref="WriteRowAsync"/> remains for binary COPY (bulk tools).
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
        // Not prepared on purpose: a generic plan would assume a few rows per array and cost more
        // server time per record on large batches than planning each batch does.
        var command = context.DataSource.CreateCommand(context.Sql.Ingest);
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        AddColumnArrays(command.Parameters, records);
        return (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>The batch as one array parameter per column, in <see cref="PostgresSql.Columns"/> order.</summary>
    internal static void AddColumnArrays(NpgsqlParameterCollection parameters, IReadOnlyList<UsageRecord> records)
    {
        var n = records.Count;
        var id = new Guid[n];
        var createdAt = new DateTime[n];
        var userId = new string?[n];
        var endpoint = new string?[n];
        var operation = new string[n];
        var requestModel = new string?[n];
        var model = new string?[n];
        var serviceTier = new string?[n];
        var input = new long[n];
        var cached = new long[n];
        var output = new long[n];
        var reasoning = new long[n];
        var audioInput = new long[n];
        var audioOutput = new long[n];
        var total = new long[n];
        var cost = new decimal?[n];
        var priceId = new string?[n];
        var duration = new double[n];
        var status = new string[n];
        var http = new int?[n];
        var streaming = new bool[n];
        var session = new string?[n];
        var problem = new string?[n];
        var metadata = new string?[n];
        for (var i = 0; i < n; i++)
        {
            var r = records[i];
            id[i] = r.Id;
            createdAt[i] = r.CreatedAt.UtcDateTime;
            userId[i] = r.UserId;
            endpoint[i] = r.Endpoint;
            operation[i] = r.Operation ?? UsageOperation.Other;
            requestModel[i] = r.RequestModel;
            model[i] = r.Model;
            serviceTier[i] = r.ServiceTier;
            input[i] = r.InputTokens;
            cached[i] = r.CachedInputTokens;
            output[i] = r.OutputTokens;
            reasoning[i] = r.ReasoningTokens;
            audioInput[i] = r.AudioInputTokens;
            audioOutput[i] = r.AudioOutputTokens;
            total[i] = r.TotalTokens;
            cost[i] = r.CostUsd;
            priceId[i] = r.PriceId;
            duration[i] = r.DurationMs;
            status[i] = UsageStatusNames.ToText(r.Status);
            http[i] = r.HttpStatus;
            streaming[i] = r.Streaming;
            session[i] = r.SessionId;
            problem[i] = r.ProblemId;
            metadata[i] = r.Tags is { } tags ? JsonSerializer.Serialize(tags, PostgresJsonContext.Default.IReadOnlyDictionaryStringString) : null;
        }

        parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = id });
        parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = createdAt, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        AddText(parameters, userId);
        AddText(parameters, endpoint);
        AddText(parameters, operation);
        AddText(parameters, requestModel);
        AddText(parameters, model);
        AddText(parameters, serviceTier);
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = input });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = cached });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = output });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = reasoning });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = audioInput });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = audioOutput });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = total });
        parameters.Add(new NpgsqlParameter<decimal?[]> { TypedValue = cost, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
        AddText(parameters, priceId);
        parameters.Add(new NpgsqlParameter<double[]> { TypedValue = duration });
        AddText(parameters, status);
        parameters.Add(new NpgsqlParameter<int?[]> { TypedValue = http, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        parameters.Add(new NpgsqlParameter<bool[]> { TypedValue = streaming });
        AddText(parameters, session);
        AddText(parameters, problem);
        parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = metadata, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
    }

    private static void AddText(NpgsqlParameterCollection parameters, string?[] values) =>
        parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });

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
        await writer.WriteAsync(UsageStatusNames.ToText(r.Status), NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
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
    }

    private static ValueTask WriteTextAsync(NpgsqlBinaryImporter writer, string? value, CancellationToken cancellationToken) =>
        value is null ? new ValueTask(writer.WriteNullAsync(cancellationToken)) : new ValueTask(writer.WriteAsync(value, NpgsqlDbType.Text, cancellationToken));
}
