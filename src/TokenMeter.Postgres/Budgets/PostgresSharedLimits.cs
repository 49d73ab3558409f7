using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// The statements of budgets and rate limits shared by every app instance (migration 0008). A check
/// is one round trip of two prepared statements in one transaction: the per-key transaction locks
/// (tokens window, requests window, budget, always in that order, so checks of one key queue), then
/// one flat statement that reads the windows' per-second counters, the budget, the month's spend and
/// the holds in force, decides, and writes the counters, the token reservation and the hold. Any
/// number of settles are one statement. Both commit without waiting for the disk.
/// </summary>
internal static class PostgresSharedLimits
{
    private static readonly ConcurrentDictionary<string, Statements> BySchema = new(StringComparer.Ordinal);

    private static readonly TimeSpan PurgeEvery = TimeSpan.FromSeconds(10);

    private static long nextPurgeTicks;

    public static async ValueTask<LimitCheckResult> CheckAsync(PostgresStoreContext context, LimitCheck check, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(check);
        var now = check.Tokens?.Now ?? check.Requests?.Now ?? check.Budget?.Now ?? throw new ArgumentException("Nothing to check.", nameof(check));
        var window = check.Tokens?.Window ?? check.Requests?.Window ?? UserRateLimiter.Window;
        var nowMs = now.ToUnixTimeMilliseconds();
        var slot = Math.DivRem(nowMs, 1000, out var rem) - (rem < 0 ? 1 : 0);
        var windowSeconds = (long)Math.Ceiling(window.TotalSeconds);
        var sql = For(context);
        var budget = check.Budget;

        // Now and then (every 10 s per process, on the windows' clock), the counters and unsettled
        // token reservations of keys idle for two windows.
        var purge = false;
        var due = Interlocked.Read(ref nextPurgeTicks);
        if (Math.Abs(now.UtcTicks - due) >= PurgeEvery.Ticks && Interlocked.CompareExchange(ref nextPurgeTicks, now.UtcTicks, due) == due)
        {
            purge = true;
        }

        var connection = await context.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        using var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        var locks = new NpgsqlBatchCommand(sql.Lock);
        locks.Parameters.Add(Text(check.Tokens?.Key));
        locks.Parameters.Add(Text(check.Requests?.Key));
        locks.Parameters.Add(Text(budget?.UserId));
        batch.BatchCommands.Add(locks);

        var decide = new NpgsqlBatchCommand(sql.Check);
        var p = decide.Parameters;
        p.Add(Text(check.Tokens?.Key));
        p.Add(Uuid(check.Tokens?.Id));
        p.Add(Bigint(check.Tokens?.Limit));
        p.Add(Bigint(check.Tokens?.Amount));
        p.Add(Text(check.Requests?.Key));
        p.Add(Bigint(check.Requests?.Limit));
        p.Add(new NpgsqlParameter<long> { TypedValue = slot });
        p.Add(new NpgsqlParameter<long> { TypedValue = slot - windowSeconds });
        p.Add(new NpgsqlParameter<long> { TypedValue = nowMs });
        p.Add(new NpgsqlParameter<DateTime> { TypedValue = now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(Text(budget?.UserId));
        p.Add(Uuid(budget?.Id));
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.Month, NpgsqlDbType = NpgsqlDbType.Date });
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.Estimate.CostUsd, NpgsqlDbType = NpgsqlDbType.Numeric });
        p.Add(Bigint(budget?.Estimate.Tokens));
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.Now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter { Value = budget is null ? DBNull.Value : budget.ExpiresAt.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<bool> { TypedValue = purge });
        p.Add(new NpgsqlParameter<DateTime> { TypedValue = (now - window - window).UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        batch.BatchCommands.Add(decide);

        // Prepared once per physical connection (later calls find it prepared): no parse or plan per check.
        await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
        var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
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

        var connection = await context.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        using var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        batch.BatchCommands.Add(new NpgsqlBatchCommand(For(context).AsyncCommit));
        var settle = new NpgsqlBatchCommand(For(context).Settle);
        var p = settle.Parameters;
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
        batch.BatchCommands.Add(settle);
        await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static Statements For(PostgresStoreContext context) => BySchema.GetOrAdd(context.Quoted, static s => new Statements(s));

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter Uuid(Guid? value) => new() { Value = value is { } v ? v : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid };

    private static NpgsqlParameter Bigint(long? value) => new() { Value = value is { } v ? v : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint };

    /// <summary>The statements for one schema.</summary>
    private sealed class Statements(string s)
    {
        public string AsyncCommit { get; } = "SELECT set_config('synchronous_commit', 'off', true)";

        /// <summary>
        /// $1 tokens key, $2 requests key, $3 budget user (each null when not checked; a null takes no
        /// lock). Commits of these rows do not wait for the disk: they are short-lived working state
        /// bounded by their window or lease, not the ledger.
        /// </summary>
        public string Lock { get; } = """
            SELECT set_config('synchronous_commit', 'off', true),
                   pg_advisory_xact_lock(hashtextextended('tokenmeter.rate/' || $1, 0)),
                   pg_advisory_xact_lock(hashtextextended('tokenmeter.rate/' || $2, 0)),
                   pg_advisory_xact_lock(hashtextextended('tokenmeter.budget/' || $3, 0))
            """;

        /// <summary>
        /// Tokens: $1 key, $2 id, $3 limit, $4 estimate (admitted while the window is below the limit).
        /// Requests: $5 key, $6 limit (one permit, admitted when it fits). $7 this second, $8 the
        /// window's first second, $9 now in ms, $10 now. Budget: $11 user, $12 hold id, $13 month, $14
        /// cost, $15 tokens, $16 its now, $17 the lease's end. A refused call writes no tokens and no
        /// hold; a call refused by the budget keeps its request permit (the request was made).
        /// Settled holds whose records have all landed, and lapsed ones, are deleted (skipping any a
        /// settle is writing: those count once more, a worst case). $18: also sweep every key's
        /// counters older than two windows and unsettled token reservations older than $19.
        /// </summary>
        public string Check { get; } = $"""
            WITH tok AS (
                SELECT coalesce(sum(c.amount), 0)::bigint AS used FROM {s}.tokenmeter_rate_slots c WHERE c.key = $1 AND c.slot >= $8),
            req AS (
                SELECT coalesce(sum(c.amount), 0)::bigint AS used FROM {s}.tokenmeter_rate_slots c WHERE c.key = $5 AND c.slot >= $8),
            lim AS (
                SELECT b.monthly_cost_usd AS cost, b.monthly_tokens AS tokens FROM {s}.tokenmeter_budgets b
                 WHERE (b.kind = 'user' AND b.user_id = $11) OR (b.kind = 'default' AND b.user_id = '' AND $11 IS NOT NULL)
                 ORDER BY b.kind DESC LIMIT 1),
            gone AS (
                DELETE FROM {s}.tokenmeter_budget_holds h
                 WHERE h.id IN (
                    SELECT g.id FROM {s}.tokenmeter_budget_holds g
                     WHERE g.user_id = $11
                       AND (g.expires_at <= $16
                            OR (g.record_ids IS NOT NULL AND NOT EXISTS (
                                SELECT 1 FROM unnest(g.record_ids, g.record_times) AS r(id, at)
                                 WHERE NOT EXISTS (SELECT 1 FROM {s}.user_api_usage u WHERE u.created_at = r.at AND u.id = r.id))))
                     FOR UPDATE SKIP LOCKED)
                RETURNING h.id),
            held AS (
                SELECT coalesce(sum(h.cost_usd), 0) AS cost, coalesce(sum(h.tokens), 0)::bigint AS tokens
                  FROM {s}.tokenmeter_budget_holds h
                 WHERE h.user_id = $11 AND h.month = $13 AND h.expires_at > $16
                   AND NOT EXISTS (SELECT 1 FROM gone WHERE gone.id = h.id)),
            spent AS (
                SELECT coalesce(sum(m.cost_usd), 0) AS cost, coalesce(sum(m.total_tokens), 0)::bigint AS tokens
                  FROM {s}.usage_user_month m
                 WHERE m.user_id = $11 AND m.month = $13),
            d AS (
                SELECT t.used AS t_used, r.used AS r_used,
                       ($1::text IS NULL OR t.used < $3) AS tok_ok,
                       ($5::text IS NULL OR r.used + 1 <= $6) AS req_ok,
                       l.cost AS l_cost, l.tokens AS l_tokens,
                       ($11::text IS NOT NULL AND (l.cost IS NOT NULL OR l.tokens IS NOT NULL)) AS bud_hold,
                       sp.cost AS s_cost, sp.tokens AS s_tokens, he.cost AS h_cost, he.tokens AS h_tokens
                  FROM tok t CROSS JOIN req r CROSS JOIN spent sp CROSS JOIN held he LEFT JOIN lim l ON true),
            e AS (
                SELECT d.*,
                       (NOT d.bud_hold
                        OR ((d.l_cost IS NULL OR d.s_cost + d.h_cost + $14 <= d.l_cost)
                            AND (d.l_tokens IS NULL OR d.s_tokens + d.h_tokens + $15 <= d.l_tokens))) AS bud_ok
                  FROM d),
            ins_tok AS (
                INSERT INTO {s}.tokenmeter_rate_slots AS c (key, slot, amount)
                SELECT $1, $7, $4 FROM e WHERE $1::text IS NOT NULL AND e.tok_ok AND e.req_ok AND e.bud_ok
                ON CONFLICT (key, slot) DO UPDATE SET amount = c.amount + excluded.amount
                RETURNING 1),
            ins_open AS (
                INSERT INTO {s}.tokenmeter_rate_open (key, id, slot, amount, at)
                SELECT $1, $2, $7, $4, $10 FROM e WHERE $1::text IS NOT NULL AND e.tok_ok AND e.req_ok AND e.bud_ok
                RETURNING 1),
            ins_req AS (
                INSERT INTO {s}.tokenmeter_rate_slots AS c (key, slot, amount)
                SELECT $5, $7, 1 FROM e WHERE $5::text IS NOT NULL AND e.tok_ok AND e.req_ok
                ON CONFLICT (key, slot) DO UPDATE SET amount = c.amount + 1
                RETURNING 1),
            ins_hold AS (
                INSERT INTO {s}.tokenmeter_budget_holds (id, user_id, month, cost_usd, tokens, expires_at)
                SELECT $12, $11, $13, $14, $15, $17 FROM e WHERE e.bud_hold AND e.tok_ok AND e.req_ok AND e.bud_ok
                RETURNING 1),
            old AS (
                DELETE FROM {s}.tokenmeter_rate_slots c WHERE c.key IN ($1, $5) AND c.slot < $8
                RETURNING 1),
            idle AS (
                DELETE FROM {s}.tokenmeter_rate_slots c WHERE $18 AND c.slot < $8 - ($7 - $8)
                RETURNING 1),
            swept AS (
                DELETE FROM {s}.tokenmeter_rate_open o WHERE $18 AND o.at < $19
                RETURNING 1)
            SELECT CASE WHEN NOT e.tok_ok THEN 'tokens' WHEN NOT e.req_ok THEN 'requests' WHEN NOT e.bud_ok THEN 'budget' END,
                   CASE WHEN NOT e.tok_ok THEN e.t_used WHEN $5::text IS NOT NULL THEN e.r_used ELSE e.t_used END,
                   CASE
                       WHEN NOT e.tok_ok THEN (
                           SELECT greatest(0, (coalesce(min(w.slot), $7) + $7 - $8 + 1) * 1000 - $9)
                             FROM (SELECT c.slot, sum(c.amount) OVER (ORDER BY c.slot) AS freed
                                     FROM {s}.tokenmeter_rate_slots c WHERE c.key = $1 AND c.slot >= $8) w
                            WHERE w.freed >= e.t_used - $3 + 1)
                       WHEN NOT e.req_ok THEN (
                           SELECT greatest(0, (coalesce(min(w.slot), $7) + $7 - $8 + 1) * 1000 - $9)
                             FROM (SELECT c.slot, sum(c.amount) OVER (ORDER BY c.slot) AS freed
                                     FROM {s}.tokenmeter_rate_slots c WHERE c.key = $5 AND c.slot >= $8) w
                            WHERE w.freed >= e.r_used + 1 - $6)
                       ELSE 0
                   END::bigint,
                   $11::text IS NOT NULL AND e.tok_ok AND e.req_ok,
                   e.l_cost, e.l_tokens,
                   CASE WHEN e.bud_hold THEN e.s_cost ELSE 0 END, CASE WHEN e.bud_hold THEN e.s_tokens ELSE 0 END,
                   CASE WHEN e.bud_hold THEN e.h_cost ELSE 0 END, CASE WHEN e.bud_hold THEN e.h_tokens ELSE 0 END
              FROM e
            """;

        /// <summary>
        /// Holds: $1 ids with $2 real cost, $3 tokens, $4 keep-until; their records as ($5 hold, $6 id,
        /// $7 time) rows. A hold without records is dropped (its call used nothing); one with records
        /// keeps counting its real cost until they have all landed. Entries: ($8 key, $9 id, $10 real
        /// amount); the reservation row is deleted and the difference moved into its second's counter,
        /// so a batch written twice counts nothing twice.
        /// </summary>
        public string Settle { get; } = $"""
            WITH s AS (
                SELECT h.id, h.cost, h.tokens, h.until,
                       (SELECT array_agg(r.id ORDER BY r.ord) FROM unnest($5::uuid[], $6::uuid[], $7::timestamptz[]) WITH ORDINALITY AS r(hold, id, at, ord) WHERE r.hold = h.id) AS ids,
                       (SELECT array_agg(r.at ORDER BY r.ord) FROM unnest($5::uuid[], $6::uuid[], $7::timestamptz[]) WITH ORDINALITY AS r(hold, id, at, ord) WHERE r.hold = h.id) AS times
                  FROM unnest($1::uuid[], $2::numeric[], $3::bigint[], $4::timestamptz[]) AS h(id, cost, tokens, until)),
            dropped AS (
                DELETE FROM {s}.tokenmeter_budget_holds t USING s WHERE t.id = s.id AND s.ids IS NULL RETURNING 1),
            kept AS (
                UPDATE {s}.tokenmeter_budget_holds t
                   SET cost_usd = s.cost, tokens = s.tokens, expires_at = s.until, record_ids = s.ids, record_times = s.times
                  FROM s
                 WHERE t.id = s.id AND s.ids IS NOT NULL
                RETURNING 1),
            settled AS (
                DELETE FROM {s}.tokenmeter_rate_open o
                 USING unnest($8::text[], $9::uuid[], $10::bigint[]) AS e(key, id, amount)
                 WHERE o.key = e.key AND o.id = e.id
                RETURNING o.key, o.slot, e.amount - o.amount AS delta),
            moved AS (
                UPDATE {s}.tokenmeter_rate_slots c
                   SET amount = c.amount + m.delta
                  FROM (SELECT x.key, x.slot, sum(x.delta)::bigint AS delta FROM settled x GROUP BY x.key, x.slot) m
                 WHERE c.key = m.key AND c.slot = m.slot AND m.delta <> 0
                RETURNING 1)
            SELECT (SELECT count(*) FROM dropped) + (SELECT count(*) FROM kept) + (SELECT count(*) FROM moved)
            """;
    }
}
