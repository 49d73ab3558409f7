using Npgsql;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Storage;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// Budgets in <c>tokenmeter_budgets</c>: one <c>default</c> row (user id '') and one <c>user</c> row per
/// override. Every change is announced in its own transaction with <c>NOTIFY</c> on
/// <see cref="HeadroomSlices.Channel"/> (payload: the schema, a new line, the user id or nothing for the
/// default), so every instance drops its headroom slices of that budget as the change commits.
/// </summary>
internal sealed class PostgresBudgetStore(PostgresStoreContext context) : IBudgetStore
{
    private string S => context.Quoted;

    public async ValueTask<BudgetSettings> GetBudgetsAsync(CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var command = context.DataSource.CreateCommand($"SELECT kind, user_id, monthly_cost_usd, monthly_tokens FROM {S}.tokenmeter_budgets ORDER BY kind, user_id COLLATE \"C\"");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        BudgetLimit? defaults = null;
        var users = new List<UserBudget>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            decimal? cost = reader.IsDBNull(2) ? null : reader.GetDecimal(2);
            long? tokens = reader.IsDBNull(3) ? null : reader.GetInt64(3);
            if (reader.GetString(0) == "default")
            {
                defaults = new BudgetLimit(cost, tokens);
            }
            else
            {
                users.Add(new UserBudget(reader.GetString(1), cost, tokens));
            }
        }

        return new BudgetSettings(defaults, users);
    }

    public async ValueTask<BudgetLimit?> GetEffectiveBudgetAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);

        // 'user' sorts after 'default', so the user's own row wins when there is one.
        using var command = context.DataSource.CreateCommand(
            $"SELECT monthly_cost_usd, monthly_tokens FROM {S}.tokenmeter_budgets WHERE (kind = 'user' AND user_id = $1) OR (kind = 'default' AND user_id = '') ORDER BY kind DESC LIMIT 1");
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = userId });
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        return new BudgetLimit(reader.IsDBNull(0) ? null : reader.GetDecimal(0), reader.IsDBNull(1) ? null : reader.GetInt64(1));
    }

    public async ValueTask SetDefaultBudgetAsync(BudgetLimit? limit, CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        if (limit is null)
        {
            var delete = context.DataSource.CreateCommand($"WITH d AS (DELETE FROM {S}.tokenmeter_budgets WHERE kind = 'default' RETURNING 1) SELECT pg_notify($1, $2)");
            await using var deleteScope = delete.ConfigureAwait(false);
            delete.CommandTimeout = context.CommandTimeout;
            AddNotify(delete, string.Empty);
            await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        await UpsertAsync("default", string.Empty, limit.MonthlyCostUsd, limit.MonthlyTokens, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask SetUserBudgetAsync(UserBudget budget, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(budget);
        ArgumentNullException.ThrowIfNull(budget.UserId);
        return UpsertAsync("user", budget.UserId, budget.MonthlyCostUsd, budget.MonthlyTokens, cancellationToken);
    }

    public async ValueTask<bool> DeleteUserBudgetAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var command = context.DataSource.CreateCommand($"WITH d AS (DELETE FROM {S}.tokenmeter_budgets WHERE kind = 'user' AND user_id = $1 RETURNING 1) SELECT (SELECT count(*) FROM d), pg_notify($2, $3)");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = userId });
        AddNotify(command, userId);
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! > 0;
    }

    private async ValueTask UpsertAsync(string kind, string userId, decimal? cost, long? tokens, CancellationToken cancellationToken)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        using var command = context.DataSource.CreateCommand(
            $"""
            WITH w AS (
                INSERT INTO {S}.tokenmeter_budgets AS b (kind, user_id, monthly_cost_usd, monthly_tokens, updated_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (kind, user_id) DO UPDATE SET monthly_cost_usd = excluded.monthly_cost_usd, monthly_tokens = excluded.monthly_tokens, updated_at = excluded.updated_at
                RETURNING 1)
            SELECT (SELECT count(*) FROM w), pg_notify($6, $7)
            """);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = kind });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = userId });
        command.Parameters.Add(new NpgsqlParameter<decimal?> { TypedValue = cost, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Numeric });
        command.Parameters.Add(new NpgsqlParameter<long?> { TypedValue = tokens, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = context.TimeProvider.GetUtcNow().UtcDateTime });
        AddNotify(command, userId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The channel and payload of the change's notification (the next two parameters).</summary>
    private void AddNotify(NpgsqlCommand command, string userId)
    {
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = HeadroomSlices.Channel });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = context.Schema + "\n" + userId });
    }
}
