using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// The statements of budgets and rate limits shared by every app instance (migration 0009). A check
/// is one round trip of two prepared statements in one transaction: the per-key transaction locks
/// (tokens window, requests window, budget, always in that order, so checks of one key queue), then
/// one flat statement that reads the windows' per-second counters, the budget, the month's spend and
/// the holds in force, decides, and writes the counters, the token reservation and the hold. Any
/// number of settles are one statement. Both commit without waiting for the disk.
/// </summary>
internal static class PostgresSharedLimits
{
    /// <summary>The most checks one round trip carries.</summary>
    internal const int MaxBatch = 128;

    /// <summary>A headroom slice claims at most 1 / Share of what is left after its first call (in calls of that size).</summary>
    internal const int Share = 4;

    /// <summary>The most lapsed holds of other users one check's sweep deletes (every 10 s per process).</summary>
    internal const int MaxLapsedSwept = 1_000;

    private static readonly ConcurrentDictionary<string, Statements> BySchema = new(StringComparer.Ordinal);

    private static readonly ConditionalWeakTable<PostgresStoreContext, CheckBatcher> Batchers = new();

    private static readonly TimeSpan PurgeEvery = TimeSpan.FromSeconds(10);

    private static long nextPurgeTicks;

    /// <summary>
    /// Checks one call. Checks that arrive while another batch is in flight go together in the next
    /// round trip (at most <see cref="MaxBatch"/>), so concurrent checks share one statement.
    /// </summary>
    public static Task<LimitCheckResult> CheckAsync(PostgresStoreContext context, LimitCheck check, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(check);
        if (check.Tokens is null && check.Requests is null && check.Budget is null)
        {
            throw new ArgumentException("Nothing to check.", nameof(check));
        }

        return Batcher(context).CheckAsync(check, cancellationToken);
    }

    /// <summary>The batcher of one store: checks, slice claims and slice adjustments share its round trips.</summary>
    internal static CheckBatcher Batcher(PostgresStoreContext context) => Batchers.GetValue(context, static c => new CheckBatcher(c));

    /// <summary>
    /// Runs checks in one round trip: the per-key transaction locks of every key in the batch (in
    /// one global order, so batches of several instances never deadlock), then one statement that
    /// decides every check in arrival order. A check counts the checks before it in the batch with
    /// the same key or user as if they were let through (a later one may be refused a little
    /// sooner, never let through past a limit).
    /// </summary>
    internal static async Task<LimitCheckResult[]> CheckBatchAsync(PostgresStoreContext context, IReadOnlyList<LimitCheck> checks, CancellationToken cancellationToken)
    {
        var answers = await ClaimBatchAsync(context, [.. checks.Select(c => new SliceClaim(c, null))], [], cancellationToken).ConfigureAwait(false);
        return [.. answers.Select(a => a.Result)];
    }

    /// <summary>
    /// <see cref="CheckBatchAsync"/> where a check may be a headroom slice's claim (<see cref="SliceClaim.Want"/>:
    /// how many calls' worth of each limit it asks for), after the slices' adjustments (returns and
    /// corrections) in the same transaction, so a claim sees what its instance just gave back.
    /// </summary>
    internal static async Task<CheckAnswer[]> ClaimBatchAsync(PostgresStoreContext context, IReadOnlyList<SliceClaim> claims, IReadOnlyList<SliceAdjust> adjustments, CancellationToken cancellationToken)
    {
        if (claims.Count == 0)
        {
            if (adjustments.Count > 0)
            {
                await AdjustAsync(context, adjustments, cancellationToken).ConfigureAwait(false);
            }

            return [];
        }

        var checks = claims.Select(c => c.Check).ToList();
        var now = checks.Max(c => c.Tokens?.Now ?? c.Requests?.Now ?? c.Budget!.Now);
        var window = checks.Select(c => c.Tokens?.Window ?? c.Requests?.Window).FirstOrDefault(w => w is not null) ?? UserRateLimiter.Window;
        var nowMs = now.ToUnixTimeMilliseconds();
        var slot = Math.DivRem(nowMs, 1000, out var rem) - (rem < 0 ? 1 : 0);
        var windowSeconds = (long)Math.Ceiling(window.TotalSeconds);
        var sql = For(context);

        // Now and then (every 10 s per process, on the windows' clock), the counters and unsettled
        // token reservations of keys idle for two windows.
        var purge = false;
        var due = Interlocked.Read(ref nextPurgeTicks);
        if (Math.Abs(now.UtcTicks - due) >= PurgeEvery.Ticks && Interlocked.CompareExchange(ref nextPurgeTicks, now.UtcTicks, due) == due)
        {
            purge = true;
        }

        var lockNames = new List<string>(checks.Count * 3);
        foreach (var c in checks)
        {
            if (c.Tokens is { } t)
            {
                lockNames.Add("tokenmeter.rate/" + t.Key);
            }

            if (c.Requests is { } r)
            {
                lockNames.Add("tokenmeter.rate/" + r.Key);
            }

            if (c.Budget is { } b)
            {
                lockNames.Add("tokenmeter.budget/" + b.UserId);
            }
        }

        AddLockNames(lockNames, adjustments);

        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        using var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        var locks = new NpgsqlBatchCommand(sql.Lock);
        locks.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. lockNames] });
        batch.BatchCommands.Add(locks);
        if (adjustments.Count > 0)
        {
            batch.BatchCommands.Add(AdjustCommand(sql, adjustments));
        }

        var decide = new NpgsqlBatchCommand(sql.Check);
        var p = decide.Parameters;
        p.Add(Array(checks, c => c.Tokens?.Key, NpgsqlDbType.Text));
        p.Add(Array(checks, c => c.Tokens?.Id, NpgsqlDbType.Uuid));
        p.Add(Array(checks, c => c.Tokens?.Limit, NpgsqlDbType.Bigint));
        p.Add(Array(checks, c => c.Tokens?.Amount, NpgsqlDbType.Bigint));
        p.Add(Array(checks, c => c.Requests?.Key, NpgsqlDbType.Text));
        p.Add(Array(checks, c => c.Requests?.Limit, NpgsqlDbType.Bigint));
        p.Add(Array(checks, c => c.Budget?.UserId, NpgsqlDbType.Text));
        p.Add(Array(checks, c => c.Budget?.Id, NpgsqlDbType.Uuid));
        p.Add(Array(checks, c => c.Budget?.Month, NpgsqlDbType.Date));
        p.Add(Array(checks, c => c.Budget?.Estimate.CostUsd, NpgsqlDbType.Numeric));
        p.Add(Array(checks, c => c.Budget?.Estimate.Tokens, NpgsqlDbType.Bigint));
        p.Add(Array(checks, c => c.Budget?.Now.UtcDateTime, NpgsqlDbType.TimestampTz));
        p.Add(Array(checks, c => c.Budget?.ExpiresAt.UtcDateTime, NpgsqlDbType.TimestampTz));
        p.Add(new NpgsqlParameter<long> { TypedValue = slot });
        p.Add(new NpgsqlParameter<long> { TypedValue = slot - windowSeconds });
        p.Add(new NpgsqlParameter<long> { TypedValue = nowMs });
        p.Add(new NpgsqlParameter<DateTime> { TypedValue = now.UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<bool> { TypedValue = purge });
        p.Add(new NpgsqlParameter<DateTime> { TypedValue = (now - window - window).UtcDateTime, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(Array(claims, c => c.Want is { } w && c.Check.Tokens is not null ? (long?)w.Calls : null, NpgsqlDbType.Bigint));
        p.Add(Array(claims, c => c.Want is { } w && c.Check.Requests is not null ? (long?)w.Calls : null, NpgsqlDbType.Bigint));
        p.Add(Array(claims, c => c.Want is { } w && c.Check.Budget is not null ? (long?)w.Calls : null, NpgsqlDbType.Bigint));
        p.Add(Array(claims, c => c.Want?.SlotOffset ?? 0L, NpgsqlDbType.Bigint));
        batch.BatchCommands.Add(decide);

        // Prepared once per physical connection (later calls find it prepared): no parse or plan per check.
        await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
        var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        for (var skip = adjustments.Count > 0 ? 2 : 1; skip > 0; skip--)
        {
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        }

        var results = new CheckAnswer[checks.Count];
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var i = (int)reader.GetInt64(0) - 1;
            results[i] = new CheckAnswer(Read(reader, checks[i]), new SliceGrant(reader.GetInt64(11), reader.GetInt64(12), reader.GetInt64(13), reader.GetInt64(14)));
        }

        return results;
    }

    /// <summary>Writes slice adjustments alone (returns on expiry, drop or shutdown, and late corrections), under the same locks as the checks.</summary>
    internal static async Task AdjustAsync(PostgresStoreContext context, IReadOnlyList<SliceAdjust> adjustments, CancellationToken cancellationToken)
    {
        var lockNames = new List<string>();
        AddLockNames(lockNames, adjustments);
        var sql = For(context);
        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        using var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        var locks = new NpgsqlBatchCommand(sql.Lock);
        locks.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. lockNames] });
        batch.BatchCommands.Add(locks);
        batch.BatchCommands.Add(AdjustCommand(sql, adjustments));
        await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void AddLockNames(List<string> lockNames, IReadOnlyList<SliceAdjust> adjustments)
    {
        foreach (var a in adjustments)
        {
            lockNames.Add(a.HoldId is null ? "tokenmeter.rate/" + a.Key : "tokenmeter.budget/" + a.Key);
        }
    }

    private static NpgsqlBatchCommand AdjustCommand(Statements sql, IReadOnlyList<SliceAdjust> adjustments)
    {
        var holds = adjustments.Where(a => a.HoldId is not null).ToList();
        var counters = adjustments.Where(a => a.HoldId is null).ToList();
        var command = new NpgsqlBatchCommand(sql.Adjust);
        var p = command.Parameters;
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. holds.Select(a => a.HoldId!.Value)] });
        p.Add(new NpgsqlParameter<decimal[]> { TypedValue = [.. holds.Select(a => a.CostUsd)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
        p.Add(new NpgsqlParameter<long[]> { TypedValue = [.. holds.Select(a => a.Amount)] });
        p.Add(new NpgsqlParameter<string[]> { TypedValue = [.. counters.Select(a => a.Key)] });
        p.Add(new NpgsqlParameter<long[]> { TypedValue = [.. counters.Select(a => a.Slot)] });
        p.Add(new NpgsqlParameter<long[]> { TypedValue = [.. counters.Select(a => a.Amount)] });
        return command;
    }

    private static LimitCheckResult Read(NpgsqlDataReader reader, LimitCheck check)
    {
        var refusedBy = reader.IsDBNull(1) ? null : reader.GetString(1);
        if (refusedBy is "tokens" or "requests")
        {
            var kind = refusedBy == "tokens" ? RateLimitKind.Tokens : RateLimitKind.Requests;
            return new LimitCheckResult(kind, new RateLimitResult(false, reader.GetInt64(2), TimeSpan.FromMilliseconds(reader.GetInt64(3))), null);
        }

        BudgetHoldResult? hold = null;
        if (reader.GetBoolean(4))
        {
            decimal? limitCost = reader.IsDBNull(5) ? null : reader.GetDecimal(5);
            long? limitTokens = reader.IsDBNull(6) ? null : reader.GetInt64(6);
            var limit = limitCost is null && limitTokens is null ? null : new BudgetLimit(limitCost, limitTokens);
            hold = new BudgetHoldResult(refusedBy is null, limit, reader.GetDecimal(7), reader.GetInt64(8), reader.GetDecimal(9), reader.GetInt64(10));
        }

        var rate = check.Tokens is null && check.Requests is null ? null : new RateLimitResult(true, reader.GetInt64(2), TimeSpan.Zero);
        return new LimitCheckResult(null, rate, hold);
    }

    private static NpgsqlParameter Array<TItem, T>(IReadOnlyList<TItem> checks, Func<TItem, T> value, NpgsqlDbType type)
    {
        var values = new T[checks.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = value(checks[i]);
        }

        return new NpgsqlParameter { Value = values, NpgsqlDbType = NpgsqlDbType.Array | type };
    }

    public static ValueTask SettleAsync(PostgresStoreContext context, IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken) =>
        SettleAsync(context, holds, entries, [], cancellationToken);

    /// <summary>Settles exact holds and window entries, and calls decided from budget slices, in one round trip.</summary>
    public static async ValueTask SettleAsync(PostgresStoreContext context, IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, IReadOnlyList<CarvedSettle> carved, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(holds);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(carved);
        var records = holds.SelectMany(h => h.Records.Select(r => (Hold: h.Id, r.Id, r.CreatedAt))).ToList();

        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        using var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        // The locks of the windows whose counters move (those of the checks, in the same global
        // order): a settle and a check never hold counter rows the other waits for.
        var locks = new NpgsqlBatchCommand(For(context).Lock);
        locks.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. entries.Select(e => "tokenmeter.rate/" + e.Key).Concat(carved.Select(c => "tokenmeter.budget/" + c.UserId))] });
        batch.BatchCommands.Add(locks);
        if (carved.Count > 0)
        {
            var records2 = carved.SelectMany(c => c.Settle.Records.Select(r => (Hold: c.Settle.Id, r.Id, r.CreatedAt))).ToList();
            var fromSlices = new NpgsqlBatchCommand(For(context).SettleCarved);
            var q = fromSlices.Parameters;
            q.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. carved.Select(c => c.Settle.Id)] });
            q.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. carved.Select(c => c.SliceId)] });
            q.Add(new NpgsqlParameter<decimal[]> { TypedValue = [.. carved.Select(c => c.EstimateCostUsd)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
            q.Add(new NpgsqlParameter<long[]> { TypedValue = [.. carved.Select(c => c.EstimateTokens)] });
            q.Add(new NpgsqlParameter<string[]> { TypedValue = [.. carved.Select(c => c.UserId)] });
            q.Add(new NpgsqlParameter<DateOnly[]> { TypedValue = [.. carved.Select(c => c.Month)] });
            q.Add(new NpgsqlParameter<decimal[]> { TypedValue = [.. carved.Select(c => c.Settle.CostUsd)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
            q.Add(new NpgsqlParameter<long[]> { TypedValue = [.. carved.Select(c => c.Settle.Tokens)] });
            q.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. carved.Select(c => c.Settle.KeepUntil.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
            q.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. records2.Select(r => r.Hold)] });
            q.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. records2.Select(r => r.Id)] });
            q.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. records2.Select(r => r.CreatedAt.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
            batch.BatchCommands.Add(fromSlices);
        }

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

    /// <summary>The statements for one schema.</summary>
    private sealed class Statements(string s)
    {
        /// <summary>
        /// $1 the lock names of every key in the batch: each taken once, in the order of its hash (one
        /// global order). Commits of these rows do not wait for the disk: they are short-lived working
        /// state bounded by their window or lease, not the ledger.
        /// For the rest of this transaction only (the statements that follow in the same round trip):
        /// no JIT (compiling a big batch's expressions took hundreds of milliseconds, the check itself
        /// about one); and the generic plan, made once per connection, instead of a custom plan per
        /// execution (planning took 1.5–3 ms a check against 0.2–0.5 ms executing it). Every
        /// statement reads and writes the working tables only through their keys (<c>= ANY</c> of the
        /// batch's keys or ids on an index), and sequential scans are off, so the generic plan stays
        /// index lookups whatever the tables held when it was made (empty at start, thousands of rows
        /// later): a scan of a whole table is never planned where an index serves.
        /// </summary>
        public string Lock { get; } = """
            SELECT set_config('synchronous_commit', 'off', true), set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),
                   set_config('enable_seqscan', 'off', true), count(pg_advisory_xact_lock(x.k))
              FROM (SELECT DISTINCT hashtextextended(n, 0) AS k FROM unnest($1::text[]) AS n ORDER BY 1) x
            """;

        /// <summary>
        /// One row per check ($1..$13 arrays, one element per check; null where not checked). Tokens:
        /// $1 key, $2 id, $3 limit, $4 estimate (admitted while the window is below the limit).
        /// Requests: $5 key, $6 limit (one permit, admitted when it fits). Budget: $7 user, $8 hold
        /// id, $9 month, $10 cost, $11 tokens, $12 its now, $13 the lease's end. $14 this second, $15
        /// the window's first second, $16 now in ms, $17 now. In arrival order, each check counts the
        /// earlier checks of the batch with its key or user as let through (tokens: every earlier one;
        /// requests: those the tokens window let through; budget: those both windows let through).
        /// A refused call writes no tokens and no hold; a call refused by the budget keeps its request
        /// permit (the request was made). Settled holds whose records have all landed, and lapsed
        /// ones, are deleted (skipping any a settle is writing: those count once more, a worst case).
        /// $18: also sweep every key's counters older than two windows, unsettled token
        /// reservations older than $19, and up to <see cref="MaxLapsedSwept"/> lapsed holds of users not in
        /// the batch (users who never come back; the batch's own go above), skipping rows another
        /// transaction holds: they go next time.
        /// Headroom slices (<see cref="HeadroomSlices"/>): $20 tokens, $21 requests, $22 budget, how
        /// many calls' worth of each the check claims (null: an exact check of one call), $23 the
        /// slice's lifetime in whole seconds. A claim is decided on its first call exactly as an exact
        /// check is, and is granted g calls' worth: 1 + at most a quarter of what is left after that
        /// call (in calls of this one's size), never more than asked, so near a limit a claim is one
        /// call. Earlier checks of the batch count as if granted everything they asked (a later one
        /// may be granted less, never past a limit). A rate slice of more than one call is written into
        /// the counter of second $14 + $23 (the last second it may be used in), which counts in every
        /// window that contains any of its uses (a counter counts from now on until its second + 61);
        /// its instance moves what it used to the second it stops using it, and gives the rest back
        /// (<see cref="Adjust"/>). A budget slice is one hold of g calls' worth with its own lease.
        /// </summary>
        public string Check { get; } = $"""
            WITH c AS (
                SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[],
                                     $7::text[], $8::uuid[], $9::date[], $10::numeric[], $11::bigint[], $12::timestamptz[], $13::timestamptz[],
                                     $20::bigint[], $21::bigint[], $22::bigint[], $23::bigint[])
                    WITH ORDINALITY AS c(tk, tid, tlim, tamt, rk, rlim, u, hid, month, cost, htok, bnow, exp, tn, rn, bn, lo, i)),
            keys AS (
                SELECT DISTINCT k.key FROM c CROSS JOIN LATERAL (VALUES (c.tk), (c.rk)) AS k(key) WHERE k.key IS NOT NULL),
            win AS (
                SELECT k.key, coalesce((SELECT sum(s.amount) FROM {s}.tokenmeter_rate_slots s WHERE s.key = k.key AND s.slot >= $15), 0)::bigint AS used
                  FROM keys k),
            t AS (
                SELECT c.*,
                       coalesce(w.used, 0) + coalesce(sum(c.tamt * coalesce(c.tn, 1)) OVER (PARTITION BY c.tk ORDER BY c.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS t_used
                  FROM c LEFT JOIN win w ON w.key = c.tk),
            t2 AS (
                SELECT t.*, (t.tk IS NULL OR t.t_used < t.tlim) AS tok_ok,
                       CASE WHEN t.tk IS NULL OR t.tn IS NULL THEN 1
                            ELSE 1 + least(t.tn - 1, greatest(0, (t.tlim - t.t_used - t.tamt) / ({Share} * t.tamt))) END AS tok_g
                  FROM t),
            r AS (
                SELECT t2.*,
                       coalesce(w.used, 0) + coalesce(sum(CASE WHEN t2.tok_ok THEN coalesce(t2.rn, 1) ELSE 0 END) OVER (PARTITION BY t2.rk ORDER BY t2.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS r_used
                  FROM t2 LEFT JOIN win w ON w.key = t2.rk),
            r2 AS (
                SELECT r.*, (r.rk IS NULL OR r.r_used + 1 <= r.rlim) AS req_ok,
                       CASE WHEN r.rk IS NULL OR r.rn IS NULL THEN 1
                            ELSE 1 + least(r.rn - 1, greatest(0, (r.rlim - r.r_used - 1) / {Share})) END AS req_g
                  FROM r),
            users AS (
                SELECT c.u, c.month, min(c.bnow) AS bnow FROM c WHERE c.u IS NOT NULL GROUP BY c.u, c.month),
            pend AS MATERIALIZED (
                SELECT p.user_id, p.day, p.cost_usd, p.total_tokens FROM {s}.usage_pending_sums p WHERE p.user_id = ANY ($7::text[])
                UNION ALL
                SELECT p.user_id, p.day, p.cost_usd, p.total_tokens FROM {s}.tokenmeter_unfolded_of(coalesce((SELECT array_agg(DISTINCT us.u) FROM users us), ARRAY[]::text[])) p),
            gone AS (
                DELETE FROM {s}.tokenmeter_budget_holds h
                 WHERE h.id = ANY (ARRAY(
                    SELECT g.id FROM {s}.tokenmeter_budget_holds g
                     WHERE g.user_id = ANY ($7::text[])
                       AND (g.expires_at <= (SELECT min(us.bnow) FROM users us)
                            OR (g.record_ids IS NOT NULL AND NOT EXISTS (
                                SELECT 1 FROM unnest(g.record_ids, g.record_times) AS rec(id, at)
                                 WHERE NOT EXISTS (SELECT 1 FROM {s}.user_api_usage u WHERE u.created_at = rec.at AND u.id = rec.id))))
                     FOR UPDATE OF g SKIP LOCKED))
                RETURNING h.id),
            acct AS (
                SELECT us.u, us.month, l.cost AS l_cost, l.tokens AS l_tokens, sp.cost AS s_cost, sp.tokens AS s_tokens, hd.cost AS h_cost, hd.tokens AS h_tokens
                  FROM users us
                  LEFT JOIN LATERAL (
                      SELECT b.monthly_cost_usd AS cost, b.monthly_tokens AS tokens FROM {s}.tokenmeter_budgets b
                       WHERE (b.kind = 'user' AND b.user_id = us.u) OR (b.kind = 'default' AND b.user_id = '')
                       ORDER BY b.kind DESC LIMIT 1) l ON true
                  CROSS JOIN LATERAL (
                      SELECT coalesce(sum(x.cost_usd), 0) AS cost, coalesce(sum(x.total_tokens), 0)::bigint AS tokens
                        FROM (SELECT m.cost_usd, m.total_tokens FROM {s}.usage_user_month m WHERE m.user_id = us.u AND m.month = us.month
                              UNION ALL
                              SELECT p.cost_usd, p.total_tokens FROM pend p
                               WHERE p.user_id = us.u AND p.day >= us.month AND p.day < (us.month + interval '1 month')::date) x) sp
                  CROSS JOIN LATERAL (
                      SELECT coalesce(sum(h.cost_usd), 0) AS cost, coalesce(sum(h.tokens), 0)::bigint AS tokens
                        FROM {s}.tokenmeter_budget_holds h
                       WHERE h.user_id = us.u AND h.month = us.month AND h.expires_at > us.bnow
                         AND NOT EXISTS (SELECT 1 FROM gone WHERE gone.id = h.id)) hd),
            b AS (
                SELECT r2.*, a.l_cost, a.l_tokens, a.s_cost, a.s_tokens,
                       (r2.u IS NOT NULL AND (a.l_cost IS NOT NULL OR a.l_tokens IS NOT NULL)) AS bud_hold,
                       a.h_cost + coalesce(sum(CASE WHEN r2.tok_ok AND r2.req_ok THEN r2.cost * coalesce(r2.bn, 1) ELSE 0 END) OVER (PARTITION BY r2.u, r2.month ORDER BY r2.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS h_cost,
                       a.h_tokens + coalesce(sum(CASE WHEN r2.tok_ok AND r2.req_ok THEN r2.htok * coalesce(r2.bn, 1) ELSE 0 END) OVER (PARTITION BY r2.u, r2.month ORDER BY r2.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint AS h_tokens
                  FROM r2 LEFT JOIN acct a ON a.u = r2.u AND a.month = r2.month),
            e AS (
                SELECT b.*,
                       (NOT b.bud_hold
                        OR ((b.l_cost IS NULL OR b.s_cost + b.h_cost + b.cost <= b.l_cost)
                            AND (b.l_tokens IS NULL OR b.s_tokens + b.h_tokens + b.htok <= b.l_tokens))) AS bud_ok,
                       CASE WHEN NOT b.bud_hold OR b.bn IS NULL THEN 1
                            ELSE 1 + least(b.bn - 1,
                                CASE WHEN b.l_cost IS NULL OR b.cost <= 0 THEN b.bn - 1
                                     ELSE greatest(0, floor((b.l_cost - b.s_cost - b.h_cost - b.cost) / ({Share} * b.cost)))::bigint END,
                                CASE WHEN b.l_tokens IS NULL OR b.htok <= 0 THEN b.bn - 1
                                     ELSE greatest(0, (b.l_tokens - b.s_tokens - b.h_tokens - b.htok) / ({Share} * b.htok)) END) END AS bud_g,
                       CASE WHEN b.tok_g > 1 THEN $14 + b.lo ELSE $14 END AS t_slot,
                       CASE WHEN b.req_g > 1 THEN $14 + b.lo ELSE $14 END AS r_slot
                  FROM b),
            ins_tok AS (
                INSERT INTO {s}.tokenmeter_rate_slots AS s (key, slot, amount)
                SELECT e.tk, e.t_slot, sum(e.tamt * e.tok_g)::bigint FROM e WHERE e.tk IS NOT NULL AND e.tok_ok AND e.req_ok AND e.bud_ok GROUP BY e.tk, e.t_slot
                ON CONFLICT (key, slot) DO UPDATE SET amount = s.amount + excluded.amount
                RETURNING 1),
            ins_open AS (
                INSERT INTO {s}.tokenmeter_rate_open (key, id, slot, amount, at)
                SELECT e.tk, e.tid, $14, e.tamt, $17 FROM e WHERE e.tk IS NOT NULL AND e.tn IS NULL AND e.tok_ok AND e.req_ok AND e.bud_ok
                RETURNING 1),
            ins_req AS (
                INSERT INTO {s}.tokenmeter_rate_slots AS s (key, slot, amount)
                SELECT e.rk, e.r_slot, sum(e.req_g)::bigint FROM e WHERE e.rk IS NOT NULL AND e.tok_ok AND e.req_ok GROUP BY e.rk, e.r_slot
                ON CONFLICT (key, slot) DO UPDATE SET amount = s.amount + excluded.amount
                RETURNING 1),
            ins_hold AS (
                INSERT INTO {s}.tokenmeter_budget_holds (id, user_id, month, cost_usd, tokens, expires_at)
                SELECT e.hid, e.u, e.month, e.cost * e.bud_g, e.htok * e.bud_g, e.exp FROM e WHERE e.bud_hold AND e.tok_ok AND e.req_ok AND e.bud_ok
                RETURNING 1),
            old AS (
                DELETE FROM {s}.tokenmeter_rate_slots s WHERE s.key = ANY (ARRAY(SELECT k.key FROM keys k)) AND s.slot < $15
                RETURNING 1),
            idle AS (
                DELETE FROM {s}.tokenmeter_rate_slots s
                 WHERE $18 AND s.ctid = ANY (ARRAY(SELECT x.ctid FROM {s}.tokenmeter_rate_slots x WHERE $18 AND x.slot < $15 - ($14 - $15) FOR UPDATE SKIP LOCKED))
                RETURNING 1),
            swept AS (
                DELETE FROM {s}.tokenmeter_rate_open o
                 WHERE $18 AND o.ctid = ANY (ARRAY(SELECT x.ctid FROM {s}.tokenmeter_rate_open x WHERE $18 AND x.at < $19 FOR UPDATE SKIP LOCKED))
                RETURNING 1),
            lapsed AS (
                DELETE FROM {s}.tokenmeter_budget_holds h
                 WHERE $18 AND h.ctid = ANY (ARRAY(
                    SELECT x.ctid FROM {s}.tokenmeter_budget_holds x
                     WHERE $18 AND x.expires_at <= $17 AND x.user_id <> ALL (array_remove($7::text[], NULL))
                     LIMIT {MaxLapsedSwept} FOR UPDATE SKIP LOCKED))
                RETURNING 1)
            SELECT e.i,
                   CASE WHEN NOT e.tok_ok THEN 'tokens' WHEN NOT e.req_ok THEN 'requests' WHEN NOT e.bud_ok THEN 'budget' END,
                   CASE WHEN NOT e.tok_ok THEN e.t_used WHEN e.rk IS NOT NULL THEN e.r_used ELSE e.t_used END,
                   CASE
                       WHEN NOT e.tok_ok THEN (
                           SELECT greatest(0, (coalesce(min(w.slot), $14) + $14 - $15 + 1) * 1000 - $16)
                             FROM (SELECT s.slot, sum(s.amount) OVER (ORDER BY s.slot) AS freed
                                     FROM {s}.tokenmeter_rate_slots s WHERE s.key = e.tk AND s.slot >= $15) w
                            WHERE w.freed >= e.t_used - e.tlim + 1)
                       WHEN NOT e.req_ok THEN (
                           SELECT greatest(0, (coalesce(min(w.slot), $14) + $14 - $15 + 1) * 1000 - $16)
                             FROM (SELECT s.slot, sum(s.amount) OVER (ORDER BY s.slot) AS freed
                                     FROM {s}.tokenmeter_rate_slots s WHERE s.key = e.rk AND s.slot >= $15) w
                            WHERE w.freed >= e.r_used + 1 - e.rlim)
                       ELSE 0
                   END::bigint,
                   e.u IS NOT NULL AND e.tok_ok AND e.req_ok,
                   e.l_cost, e.l_tokens,
                   CASE WHEN e.bud_hold THEN e.s_cost ELSE 0 END, CASE WHEN e.bud_hold THEN e.s_tokens ELSE 0 END,
                   CASE WHEN e.bud_hold THEN e.h_cost ELSE 0 END, CASE WHEN e.bud_hold THEN e.h_tokens ELSE 0 END,
                   e.tok_g::bigint, e.req_g::bigint, e.bud_g::bigint, $14
              FROM e
            """;

        /// <summary>
        /// Two CTEs that take (id, cost, tokens) rows of CTE <c>r</c> out of those holds: a hold left
        /// with nothing is deleted (emptied), the others lowered (less).
        /// </summary>
        private static string TakeFromHolds(string s, string ids) => $"""
            emptied AS (
                DELETE FROM {s}.tokenmeter_budget_holds h USING r
                 WHERE h.id = ANY ({ids}) AND h.id = r.id AND h.cost_usd <= r.cost AND h.tokens <= r.tokens
                RETURNING 1),
            less AS (
                UPDATE {s}.tokenmeter_budget_holds h SET cost_usd = h.cost_usd - r.cost, tokens = h.tokens - r.tokens
                  FROM r
                 WHERE h.id = ANY ({ids}) AND h.id = r.id AND NOT (h.cost_usd <= r.cost AND h.tokens <= r.tokens)
                RETURNING 1)
            """;

        /// <summary>
        /// CTE <c>rec</c>: the records given as (hold, id, time) arrays, one row per hold with its
        /// record ids and times in the order given (one pass over the arrays, whatever their length).
        /// </summary>
        private static string Records(string holds, string ids, string times) => $"""
            rec AS (
                SELECT r.hold, array_agg(r.id ORDER BY r.ord) AS ids, array_agg(r.at ORDER BY r.ord) AS times
                  FROM unnest({holds}::uuid[], {ids}::uuid[], {times}::timestamptz[]) WITH ORDINALITY AS r(hold, id, at, ord)
                 GROUP BY r.hold)
            """;

        /// <summary>
        /// Headroom slices' adjustments, after the locks of their keys: $1 budget slice holds, less $2
        /// cost and $3 tokens (what its instance gives back; a hold left with nothing is deleted);
        /// ($4 key, $5 second, $6 amount) added to a window's counter (a slice's unused part given
        /// back, what it used moved to the second it stopped being used, a late correction). Only a
        /// positive amount creates a counter; a counter never goes below zero (an adjustment that
        /// arrives after its counter left the window changes nothing there).
        /// </summary>
        public string Adjust { get; } = $"""
            WITH r AS (
                SELECT x.id, sum(x.cost) AS cost, sum(x.tokens)::bigint AS tokens
                  FROM unnest($1::uuid[], $2::numeric[], $3::bigint[]) AS x(id, cost, tokens) GROUP BY x.id),
            {TakeFromHolds(s, "$1::uuid[]")},
            d AS (
                SELECT x.key, x.slot, sum(x.amount)::bigint AS amount
                  FROM unnest($4::text[], $5::bigint[], $6::bigint[]) AS x(key, slot, amount) GROUP BY x.key, x.slot),
            up AS (
                INSERT INTO {s}.tokenmeter_rate_slots AS c (key, slot, amount)
                SELECT d.key, d.slot, d.amount FROM d WHERE d.amount > 0
                ON CONFLICT (key, slot) DO UPDATE SET amount = c.amount + excluded.amount
                RETURNING 1),
            down AS (
                UPDATE {s}.tokenmeter_rate_slots c SET amount = greatest(0, c.amount + d.amount)
                  FROM d
                 WHERE c.key = ANY ($4::text[]) AND c.key = d.key AND c.slot = d.slot AND d.amount < 0
                RETURNING 1)
            SELECT (SELECT count(*) FROM emptied) + (SELECT count(*) FROM less) + (SELECT count(*) FROM up) + (SELECT count(*) FROM down)
            """;

        /// <summary>
        /// Settles of calls decided from a budget slice: ($1 call, $2 slice, $3 estimate cost, $4
        /// estimate tokens, $5 user, $6 month, $7 real cost, $8 real tokens, $9 keep-until); their
        /// records as ($10 call, $11 id, $12 time) rows. Each call becomes its own hold of its real cost
        /// (counting until its records have all landed, like a settled exact hold) and its estimate
        /// leaves the slice's hold, in one statement; a call written twice is inserted once and taken
        /// from its slice once.
        /// </summary>
        public string SettleCarved { get; } = $"""
            WITH {Records("$10", "$11", "$12")},
            s AS (
                SELECT h.*, rec.ids, rec.times
                  FROM unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::bigint[], $5::text[], $6::date[], $7::numeric[], $8::bigint[], $9::timestamptz[])
                       AS h(id, slice, ecost, etok, u, month, cost, tokens, until)
                  LEFT JOIN rec ON rec.hold = h.id),
            ins AS (
                INSERT INTO {s}.tokenmeter_budget_holds (id, user_id, month, cost_usd, tokens, expires_at, record_ids, record_times)
                SELECT s.id, s.u, s.month, s.cost, s.tokens, s.until, coalesce(s.ids, ARRAY[]::uuid[]), coalesce(s.times, ARRAY[]::timestamptz[]) FROM s
                ON CONFLICT (id) DO NOTHING
                RETURNING id),
            r AS (
                SELECT s.slice AS id, sum(s.ecost) AS cost, sum(s.etok)::bigint AS tokens FROM s JOIN ins ON ins.id = s.id GROUP BY s.slice),
            {TakeFromHolds(s, "$2::uuid[]")}
            SELECT (SELECT count(*) FROM ins) + (SELECT count(*) FROM emptied) + (SELECT count(*) FROM less)
            """;

        /// <summary>
        /// Holds: $1 ids with $2 real cost, $3 tokens, $4 keep-until; their records as ($5 hold, $6 id,
        /// $7 time) rows. A hold without records is dropped (its call used nothing); one with records
        /// keeps counting its real cost until they have all landed. Entries: ($8 key, $9 id, $10 real
        /// amount); the reservation row is deleted and the difference moved into its second's counter,
        /// so a batch written twice counts nothing twice.
        /// </summary>
        public string Settle { get; } = $"""
            WITH {Records("$5", "$6", "$7")},
            s AS (
                SELECT h.id, h.cost, h.tokens, h.until, rec.ids, rec.times
                  FROM unnest($1::uuid[], $2::numeric[], $3::bigint[], $4::timestamptz[]) AS h(id, cost, tokens, until)
                  LEFT JOIN rec ON rec.hold = h.id),
            dropped AS (
                DELETE FROM {s}.tokenmeter_budget_holds t USING s WHERE t.id = ANY ($1::uuid[]) AND t.id = s.id AND s.ids IS NULL RETURNING 1),
            kept AS (
                UPDATE {s}.tokenmeter_budget_holds t
                   SET cost_usd = s.cost, tokens = s.tokens, expires_at = s.until, record_ids = s.ids, record_times = s.times
                  FROM s
                 WHERE t.id = ANY ($1::uuid[]) AND t.id = s.id AND s.ids IS NOT NULL
                RETURNING 1),
            settled AS (
                DELETE FROM {s}.tokenmeter_rate_open o
                 USING unnest($8::text[], $9::uuid[], $10::bigint[]) AS e(key, id, amount)
                 WHERE o.key = ANY ($8::text[]) AND o.id = ANY ($9::uuid[]) AND o.key = e.key AND o.id = e.id
                RETURNING o.key, o.slot, e.amount - o.amount AS delta),
            moved AS (
                UPDATE {s}.tokenmeter_rate_slots c
                   SET amount = c.amount + m.delta
                  FROM (SELECT x.key, x.slot, sum(x.delta)::bigint AS delta FROM settled x GROUP BY x.key, x.slot) m
                 WHERE c.key = ANY ($8::text[]) AND c.key = m.key AND c.slot = m.slot AND m.delta <> 0
                RETURNING 1)
            SELECT (SELECT count(*) FROM dropped) + (SELECT count(*) FROM kept) + (SELECT count(*) FROM moved)
            """;
    }
}

/// <summary>A check, or a headroom slice's claim (<paramref name="Want"/> set), for one round trip.</summary>
/// <param name="Check">The limits to check.</param>
/// <param name="Want">For a claim: how many calls' worth it asks for, and the slice's lifetime in seconds.</param>
internal sealed record SliceClaim(LimitCheck Check, SliceWant? Want);

/// <summary>How much a headroom slice's claim asks for.</summary>
/// <param name="Calls">Calls' worth of each limit the claim covers (at least 1: the call that claims).</param>
/// <param name="SlotOffset">The slice's lifetime in whole seconds: a rate slice of more than one call is counted in the counter of that second.</param>
internal sealed record SliceWant(long Calls, long SlotOffset);

/// <summary>What a check's round trip granted: calls' worth of each limit (1 for an exact check), and the second it was decided in.</summary>
internal readonly record struct SliceGrant(long TokensCalls, long RequestsCalls, long BudgetCalls, long Slot);

/// <summary>The answer to a <see cref="SliceClaim"/>.</summary>
internal sealed record CheckAnswer(LimitCheckResult Result, SliceGrant Grant);

/// <summary>The settle of a call decided from a budget slice: its own hold of the real cost replaces its estimate in the slice's hold.</summary>
internal sealed record CarvedSettle(HoldSettle Settle, Guid SliceId, string UserId, DateOnly Month, decimal EstimateCostUsd, long EstimateTokens);

/// <summary>
/// Coalesces the checks of one store: a check that arrives while none is in flight goes at once (a
/// batch of one); checks that arrive while one is in flight go together in the next round trip.
/// Headroom slices' adjustments queued before a check go in its round trip, before it.
/// </summary>
internal sealed class CheckBatcher(PostgresStoreContext context)
{
    private readonly ConcurrentQueue<Pending> _queue = new();
    private readonly ConcurrentQueue<SliceAdjust> _adjustments = new();
    private int _running;

    public async Task<LimitCheckResult> CheckAsync(LimitCheck check, CancellationToken cancellationToken) =>
        (await ClaimAsync(new SliceClaim(check, null), cancellationToken).ConfigureAwait(false)).Result;

    public Task<CheckAnswer> ClaimAsync(SliceClaim claim, CancellationToken cancellationToken)
    {
        var pending = new Pending(claim);
        _queue.Enqueue(pending);
        Start();
        return cancellationToken.CanBeCanceled ? pending.Task.WaitAsync(cancellationToken) : pending.Task;
    }

    /// <summary>Queues adjustments for the next round trip (with the next checks, or alone when none come).</summary>
    public void Adjust(IEnumerable<SliceAdjust> adjustments, bool send)
    {
        foreach (var a in adjustments)
        {
            _adjustments.Enqueue(a);
        }

        if (send)
        {
            // Off the caller's thread: the caller may hold its slices' lock.
            ThreadPool.UnsafeQueueUserWorkItem(static b => b.Start(), this, preferLocal: false);
        }
    }

    /// <summary>Takes the adjustments not yet written (shutdown writes them itself).</summary>
    public List<SliceAdjust> TakeAdjustments()
    {
        var taken = new List<SliceAdjust>();
        while (_adjustments.TryDequeue(out var a))
        {
            taken.Add(a);
        }

        return taken;
    }

    /// <summary>Adjustments queued and not yet written.</summary>
    public bool HasAdjustments => !_adjustments.IsEmpty;

    private void Start()
    {
        if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
        {
            _ = RunAsync();
        }
    }

    private async Task RunAsync()
    {
        var batch = new List<Pending>();
        var claims = new List<SliceClaim>();
        var adjustments = new List<SliceAdjust>();
        while (true)
        {
            while (batch.Count < PostgresSharedLimits.MaxBatch && _queue.TryDequeue(out var next))
            {
                batch.Add(next);
                claims.Add(next.Claim);
            }

            // After the checks: an adjustment queued before a check taken above is taken too.
            while (_adjustments.TryDequeue(out var adjustment))
            {
                adjustments.Add(adjustment);
            }

            if (batch.Count == 0 && adjustments.Count == 0)
            {
                Volatile.Write(ref _running, 0);
                if ((_queue.IsEmpty && _adjustments.IsEmpty) || Interlocked.CompareExchange(ref _running, 1, 0) != 0)
                {
                    return;
                }

                continue;
            }

            try
            {
                var results = await PostgresSharedLimits.ClaimBatchAsync(context, claims, adjustments, CancellationToken.None).ConfigureAwait(false);
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].SetResult(results[i]);
                }
            }
            catch (Exception ex)
            {
                foreach (var pending in batch)
                {
                    pending.SetException(ex);
                }

                if (adjustments.Count > 0)
                {
                    // Not written: a budget slice's hold lapses with its lease, a counter with its window
                    // (both only ever count more than was used, never less).
                    Diagnostics.Log.SliceAdjustmentsLost(context.Logger, ex, adjustments.Count);
                }
            }

            batch.Clear();
            claims.Clear();
            adjustments.Clear();
        }
    }

    private sealed class Pending(SliceClaim claim) : TaskCompletionSource<CheckAnswer>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public SliceClaim Claim => claim;
    }
}
