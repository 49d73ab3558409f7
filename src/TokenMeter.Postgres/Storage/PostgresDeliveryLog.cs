using Npgsql;
using TokenMeter.Storage;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Deliveries in <c>tokenmeter_deliveries</c>. A claim is one atomic upsert: it takes a new key, or
/// an uncompleted key whose lease has run out; a row lock makes exactly one concurrent caller win.
/// </summary>
internal sealed class PostgresDeliveryLog(PostgresStoreContext context) : IDeliveryLog
{
    public async ValueTask<bool> TryClaimAsync(string kind, string key, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lease, TimeSpan.Zero);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var now = context.TimeProvider.GetUtcNow().UtcDateTime;
        using var command = context.DataSource.CreateCommand(
            $"""
            INSERT INTO {context.Quoted}.tokenmeter_deliveries AS d (kind, key, claimed_until) VALUES ($1, $2, $4)
            ON CONFLICT (kind, key) DO UPDATE SET claimed_until = excluded.claimed_until
            WHERE d.completed_at IS NULL AND d.claimed_until <= $3
            RETURNING 1
            """);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = kind });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now + lease });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
    }

    public async ValueTask CompleteAsync(string kind, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(key);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var now = context.TimeProvider.GetUtcNow().UtcDateTime;
        using var command = context.DataSource.CreateCommand(
            $"""
            INSERT INTO {context.Quoted}.tokenmeter_deliveries AS d (kind, key, claimed_until, completed_at) VALUES ($1, $2, $3, $3)
            ON CONFLICT (kind, key) DO UPDATE SET completed_at = coalesce(d.completed_at, excluded.completed_at)
            """);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = kind });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
