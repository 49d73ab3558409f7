using Npgsql;
using NpgsqlTypes;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// The statements of budgets and rate limits shared by every app instance (migration 0006): every
/// check of a call is one call of <c>tokenmeter_check_limits</c>, any number of settles one call of
/// <c>tokenmeter_settle_limits</c>; both commit without waiting for the disk.
/// </summary>
internal static class PostgresSharedLimits
{
    public static async ValueTask<LimitCheckResult> CheckAsync(PostgresStoreContext context, LimitCheck check, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(check);
        var now = check.Tokens?.Now ?? check.Requests?.Now ?? check.Budget?.Now ?? throw new ArgumentException("Nothing to check.", nameof(check));
        var window = check.Tokens?.Window ?? check.Requests?.Window ?? UserRateLimiter.Window;
        var command = context.DataSource.CreateCommand(
            $"SELECT refused_by, rate_used, retry_after_ms, budget_checked, limit_cost, limit_tokens, spent_cost, spent_tokens, held_cost, held_tokens FROM {context.Quoted}.tokenmeter_check_limits($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        var p = command.Parameters;
        p.Add(new NpgsqlParameter<DateTime> { TypedValue = now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = window, NpgsqlDbType = NpgsqlDbType.Interval });
        p.Add(Text(check.Tokens?.Key));
        p.Add(Uuid(check.Tokens?.Id));
        p.Add(Bigint(check.Tokens?.Limit));
        p.Add(Bigint(check.Tokens?.Amount));
        p.Add(Text(check.Requests?.Key));
        p.Add(Uuid(check.Requests?.Id));
        p.Add(Bigint(check.Requests?.Limit));
        var budget = check.Budget;
        p.Add(Text(budget?.UserId));
        p.Add(Uuid(budget?.Id));
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.Month, NpgsqlDbType = NpgsqlDbType.Date });
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.Estimate.CostUsd, NpgsqlDbType = NpgsqlDbType.Numeric });
        p.Add(Bigint(budget?.Estimate.Tokens));
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.Now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.ExpiresAt.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var refusedBy = reader.IsDBNull(0) ? null : reader.GetString(0);
        if (refusedBy is "tokens" or "requests")
        {
            var kind = refusedBy == "tokens" ? RateLimitKind.Tokens : RateLimitKind.Requests;
            return new LimitCheckResult(kind, new RateLimitResult(false, reader.GetInt64(1), TimeSpan.FromMilliseconds(reader.GetInt64(2))), null);
        }

        BudgetHoldResult? hold = null;
        if (reader.GetBoolean(3))
        {
            decimal? limitCost = reader.IsDBNull(4) ? null : reader.GetDecimal(4);
            long? limitTokens = reader.IsDBNull(5) ? null : reader.GetInt64(5);
            var limit = limitCost is null && limitTokens is null ? null : new BudgetLimit(limitCost, limitTokens);
            hold = new BudgetHoldResult(refusedBy is null, limit, reader.GetDecimal(6), reader.GetInt64(7), reader.GetDecimal(8), reader.GetInt64(9));
        }

        var rate = check.Tokens is null && check.Requests is null ? null : new RateLimitResult(true, reader.GetInt64(1), TimeSpan.Zero);
        return new LimitCheckResult(null, rate, hold);
    }

    public static async ValueTask SettleAsync(PostgresStoreContext context, IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(holds);
        ArgumentNullException.ThrowIfNull(entries);
        var records = holds.SelectMany(h => h.Records.Select(r => (Hold: h.Id, r.Id, r.CreatedAt))).ToList();
        var command = context.DataSource.CreateCommand($"SELECT {context.Quoted}.tokenmeter_settle_limits($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        var p = command.Parameters;
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. holds.Select(h => h.Id)] });
        p.Add(new NpgsqlParameter<decimal[]> { TypedValue = [.. holds.Select(h => h.CostUsd)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
        p.Add(new NpgsqlParameter<long[]> { TypedValue = [.. holds.Select(h => h.Tokens)] });
        p.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. holds.Select(h => h.KeepUntil.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. records.Select(r => r.Hold)] });
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. records.Select(r => r.Id)] });
        p.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. records.Select(r => r.CreatedAt.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<string[]> { TypedValue = [.. entries.Select(e => e.Key)] });
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. entries.Select(e => e.Id)] });
        p.Add(new NpgsqlParameter<long[]> { TypedValue = [.. entries.Select(e => e.Amount)] });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter Uuid(Guid? value) => new() { Value = value is { } v ? v : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid };

    private static NpgsqlParameter Bigint(long? value) => new() { Value = value is { } v ? v : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint };
}
