using Npgsql;
using NpgsqlTypes;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Storage;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// Budget reservations shared by every app instance, in <c>tokenmeter_budget_holds</c>:
/// check-and-reserve is one call of <c>tokenmeter_budget_reserve</c> (migration 0005), settle and
/// release one statement each.
/// </summary>
internal sealed class PostgresBudgetReservations(PostgresStoreContext context) : IBudgetReservationStore
{
    private string S => context.Quoted;

    public async ValueTask<BudgetHoldResult> TryReserveAsync(BudgetHoldRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var command = context.DataSource.CreateCommand($"SELECT allowed, limit_cost, limit_tokens, spent_cost, spent_tokens, held_cost, held_tokens FROM {S}.tokenmeter_budget_reserve($1, $2, $3, $4, $5, $6, $7)");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = request.Id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.UserId });
        command.Parameters.Add(new NpgsqlParameter<DateOnly> { TypedValue = request.Month });
        command.Parameters.Add(new NpgsqlParameter<decimal> { TypedValue = request.Estimate.CostUsd, NpgsqlDbType = NpgsqlDbType.Numeric });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = request.Estimate.Tokens });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.Now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.ExpiresAt.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        decimal? limitCost = reader.IsDBNull(1) ? null : reader.GetDecimal(1);
        long? limitTokens = reader.IsDBNull(2) ? null : reader.GetInt64(2);
        var limit = limitCost is null && limitTokens is null ? null : new BudgetLimit(limitCost, limitTokens);
        return new BudgetHoldResult(reader.GetBoolean(0), limit, reader.GetDecimal(3), reader.GetInt64(4), reader.GetDecimal(5), reader.GetInt64(6));
    }

    public async ValueTask SettleAsync(Guid id, decimal costUsd, long tokens, IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> records, DateTimeOffset keepUntil, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        var command = context.DataSource.CreateCommand($"UPDATE {S}.tokenmeter_budget_holds SET cost_usd = $2, tokens = $3, record_ids = $4, record_times = $5, expires_at = $6 WHERE id = $1");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        command.Parameters.Add(new NpgsqlParameter<decimal> { TypedValue = costUsd, NpgsqlDbType = NpgsqlDbType.Numeric });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = tokens });
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. records.Select(r => r.Id)] });
        command.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. records.Select(r => r.CreatedAt.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = keepUntil.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask ReleaseAsync(Guid id, CancellationToken cancellationToken = default)
    {
        var command = context.DataSource.CreateCommand($"DELETE FROM {S}.tokenmeter_budget_holds WHERE id = $1");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
