using Npgsql;
using NpgsqlTypes;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.RateLimits;

/// <summary>
/// Rate-limit windows shared by every app instance, in <c>tokenmeter_rate_entries</c>: one row per
/// permit or token reservation of the last window (an exact sliding window). A check is one call of
/// <c>tokenmeter_rate_acquire</c> (migration 0005), which holds a per-key transaction lock for the
/// length of that statement; a settle is one UPDATE (or DELETE when the call used nothing).
/// </summary>
internal sealed class PostgresRateLimitStore(PostgresStoreContext context) : IRateLimitStore
{
    private string S => context.Quoted;

    public bool IsSynchronous => false;

    public async ValueTask<RateLimitResult> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var command = context.DataSource.CreateCommand($"SELECT allowed, used, retry_after_ms FROM {S}.tokenmeter_rate_acquire($1, $2, $3, $4, $5, $6, $7)");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.Key });
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = request.Id });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.Now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = request.Window, NpgsqlDbType = NpgsqlDbType.Interval });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = request.Limit });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = request.Amount });
        command.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = request.MustFit });
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new RateLimitResult(reader.GetBoolean(0), reader.GetInt64(1), TimeSpan.FromMilliseconds(reader.GetInt64(2)));
    }

    public async ValueTask SettleAsync(string key, Guid id, long amount, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var command = context.DataSource.CreateCommand(amount == 0
            ? $"DELETE FROM {S}.tokenmeter_rate_entries WHERE key = $1 AND id = $2"
            : $"UPDATE {S}.tokenmeter_rate_entries SET amount = $3 WHERE key = $1 AND id = $2");
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = context.CommandTimeout;
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        if (amount != 0)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = amount });
        }

        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
