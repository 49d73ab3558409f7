using System.Runtime.CompilerServices;
using System.Text.Json;
using Npgsql;
using TokenMeter.Postgres.Storage;
using TokenMeter.Pricing;
using TokenMeter.Querying;

namespace TokenMeter.Postgres.Querying;

/// <summary>
/// <see cref="IUsageQueries"/> on the rollups: every query reads pre-aggregated rows (at most a few
/// thousand) plus the sums still pending a fold (<c>usage_pending</c>, in the same statement, so one
/// snapshot), except <see cref="ExportAsync"/>, which streams the raw table, and the edge days of a
/// user×endpoint×model range, read from the raw table.
/// </summary>
internal sealed class PostgresUsageQueries(PostgresStoreContext context) : IUsageQueries, IUsageExportRowSource
{
    // The rollup columns of UsageFigures, in its order (then cache_write_tokens); ReadFigures reads them back from any ordinal.
    private static readonly string[] Figures = ["calls", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "total_tokens", "cost_usd", "cache_write_tokens"];
    private static readonly string FigureColumns = string.Join(", ", Figures);
    private static readonly string SumColumns = string.Join(", ", Figures.Select(c => c == "cost_usd" ? "coalesce(sum(cost_usd), 0)" : $"coalesce(sum({c}), 0)::bigint"));
    private static readonly string NamedSumColumns = string.Join(", ", Figures.Select(c => c == "cost_usd" ? "coalesce(sum(cost_usd), 0) AS cost_usd" : $"coalesce(sum({c}), 0)::bigint AS {c}"));
    private static readonly int FigureCount = Figures.Length;

    private static readonly string ZeroColumns = string.Join(", ", Figures.Select(c => c == "cost_usd" ? "0::numeric" : "0::bigint"));

    private FinishedDays finishedDays = new();

    private string S => context.Quoted;

    /// <summary>
    /// Whether the dashboards' bulk reads over every user keep the folded rows of the days (and months) they read, and read
    /// again only what changed (see <see cref="FinishedDays"/>). On by default; off reads everything every time (benchmarks
    /// compare the two).
    /// </summary>
    internal bool KeepFinishedDays { get; init; } = true;

    /// <summary>The most rows the kept days and months hold (see <see cref="FinishedDays"/>); tests set a small one.</summary>
    internal int KeptRowsBudget
    {
        init => finishedDays = new FinishedDays(value);
    }

    /// <summary>How many rows the kept days and months hold now.</summary>
    internal long KeptRows => finishedDays.RowsHeld;

    /// <summary>How many days' rows the bulk daily read has read from the store (not from memory) so far.</summary>
    internal long FinishedDaysRead => finishedDays.DaysRead;

    /// <summary>How many lines the bulk read of a month's lines has read from the store (not from memory) so far.</summary>
    internal long MonthLinesRead => finishedDays.LinesRead;

    /// <summary>What the rollups do not hold yet, for everyone (the <c>usage_pending</c> view) or for the user in <paramref name="userParameter"/>.</summary>
    private string Pending(string? userParameter) => userParameter is null ? $"{S}.usage_pending" : PendingOf(userParameter);

    /// <summary>
    /// What the rollups do not hold yet for the user in <paramref name="userParameter"/> (<c>tokenmeter_pending_of</c>,
    /// migration 0011): read through the user indexes, where the view reads every unfolded batch.
    /// </summary>
    private string PendingOf(string userParameter) => $"{S}.tokenmeter_pending_of({userParameter})";

    public async ValueTask<UsageStats> GetStatsAsync(DateOnly today, CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var month = PostgresStoreContext.MonthOf(today);

        // All time from the all-time rows per endpoint and model (migration 0016: as many whatever the length of the history).
        // Users, and the active users of a day or month: the folded count plus the pending users without a folded row.
        var sql = $"""
            SELECT e.*,
                   (SELECT count(*) FROM {S}.usage_user_total)
                   + (SELECT count(DISTINCT p.user_id) FROM {S}.usage_pending p
                      WHERE p.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {S}.usage_user_total t WHERE t.user_id = p.user_id)),
                   d.*,
                   coalesce((SELECT active_users FROM {S}.usage_active_day WHERE day = $1), 0)
                   + (SELECT count(DISTINCT p.user_id) FROM {S}.usage_pending p
                      WHERE p.day = $1 AND p.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {S}.usage_user_day u WHERE u.user_id = p.user_id AND u.day = $1)),
                   m.*,
                   coalesce((SELECT active_users FROM {S}.usage_active_month WHERE month = $2), 0)
                   + (SELECT count(DISTINCT p.user_id) FROM {S}.usage_pending p
                      WHERE p.day >= $2 AND p.day < $3 AND p.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {S}.usage_user_month u WHERE u.user_id = p.user_id AND u.month = $2))
            FROM (SELECT {SumColumns} FROM (SELECT {FigureColumns} FROM {S}.usage_endpoint_total UNION ALL SELECT {FigureColumns} FROM {S}.usage_pending) x) e,
                 (SELECT {SumColumns} FROM (SELECT {FigureColumns} FROM {S}.usage_endpoint_day WHERE day = $1 UNION ALL SELECT {FigureColumns} FROM {S}.usage_pending WHERE day = $1) x) d,
                 (SELECT {SumColumns} FROM (SELECT {FigureColumns} FROM {S}.usage_endpoint_month WHERE month = $2 UNION ALL SELECT {FigureColumns} FROM {S}.usage_pending WHERE day >= $2 AND day < $3) x) m
            """;
        var command = Command(sql, today, month, month.AddMonths(1));
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        int dayAt = FigureCount + 1, monthAt = dayAt + FigureCount + 1;
        return new UsageStats(
            ReadFigures(reader, 0),
            reader.GetInt64(FigureCount),
            new UsagePeriodTotals(ReadFigures(reader, dayAt), reader.GetInt64(dayAt + FigureCount)),
            new UsagePeriodTotals(ReadFigures(reader, monthAt), reader.GetInt64(monthAt + FigureCount)));
    }

    public async ValueTask<UserSummaryPage> GetUserSummariesAsync(UserSummaryQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1, nameof(query));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, 500, nameof(query));
        ArgumentOutOfRangeException.ThrowIfNegative(query.Offset, nameof(query));

        // Sort keys come from this whitelist only; ties always fall back to the user id, ascending.
        var key = query.Sort switch
        {
            UserSummarySort.Cost => "cost_usd",
            UserSummarySort.Tokens => "total_tokens",
            UserSummarySort.Calls => "calls",
            UserSummarySort.LastCall => "last_call_at",
            UserSummarySort.UserId => "user_id COLLATE \"C\"",
            _ => throw new ArgumentOutOfRangeException(nameof(query), query.Sort, "Unknown sort key."),
        };
        var direction = query.Order == SortOrder.Ascending ? "ASC" : "DESC";
        var orderBy = query.Sort == UserSummarySort.UserId ? $"{key} {direction}" : $"{key} {direction}, user_id COLLATE \"C\" ASC";

        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

        await using var connectionScope = connection.ConfigureAwait(false);
        var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        await using var batchScope = batch.ConfigureAwait(false);
        var page = new NpgsqlBatchCommand(
            $"""
            WITH p AS (
                SELECT user_id, {NamedSumColumns}, max(last_at) AS last_at FROM {S}.usage_pending WHERE user_id IS NOT NULL GROUP BY user_id)
            SELECT user_id, {FigureColumns}, last_call_at
            FROM (
                SELECT coalesce(t.user_id, p.user_id) AS user_id, {Combined("t", "p")}, greatest(t.last_call_at, p.last_at) AS last_call_at
                FROM {S}.usage_user_total t FULL JOIN p ON p.user_id = t.user_id
            ) x
            ORDER BY {orderBy} LIMIT $1 OFFSET $2
            """);
        page.Parameters.Add(new NpgsqlParameter<int> { TypedValue = query.Limit });
        page.Parameters.Add(new NpgsqlParameter<int> { TypedValue = query.Offset });
        batch.BatchCommands.Add(page);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            $"""
            SELECT (SELECT count(*) FROM {S}.usage_user_total)
                   + (SELECT count(DISTINCT p.user_id) FROM {S}.usage_pending p
                      WHERE p.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {S}.usage_user_total t WHERE t.user_id = p.user_id))
            """));
        var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var items = new List<UserUsageSummary>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            items.Add(ReadSummary(reader));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new UserSummaryPage(items, reader.GetInt64(0));
    }

    public async ValueTask<UserUsageDetail?> GetUserUsageAsync(string userId, DateOnly today, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var month = PostgresStoreContext.MonthOf(today);
        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var batch = new NpgsqlBatch(connection) { Timeout = context.CommandTimeout };
        await using var batchScope = batch.ConfigureAwait(false);
        // Every part: the folded rollup plus the user's sums still pending (one statement each, so one snapshot each);
        // no row at all when the user has neither.
        batch.BatchCommands.Add(BatchCommand(
            $"""
            SELECT $1::text, {SumColumns}, max(last_at)
            FROM (
                SELECT {FigureColumns}, last_call_at AS last_at FROM {S}.usage_user_total WHERE user_id = $1
                UNION ALL
                SELECT {FigureColumns}, last_at FROM {PendingOf("$1")} WHERE user_id = $1
            ) x
            HAVING count(*) > 0
            """,
            userId));
        batch.BatchCommands.Add(BatchCommand(
            $"""
            SELECT {SumColumns}
            FROM (
                SELECT {FigureColumns} FROM {S}.usage_user_month WHERE user_id = $1 AND month = $2
                UNION ALL
                SELECT {FigureColumns} FROM {PendingOf("$1")} WHERE user_id = $1 AND day >= $2 AND day < $3
            ) x
            """,
            userId,
            month,
            month.AddMonths(1)));
        batch.BatchCommands.Add(BatchCommand(
            $"""
            SELECT endpoint, model, {SumColumns}
            FROM (
                SELECT endpoint, model, {FigureColumns} FROM {S}.usage_user_endpoint_month WHERE user_id = $1
                UNION ALL
                SELECT endpoint, model, {FigureColumns} FROM {PendingOf("$1")} WHERE user_id = $1
            ) x
            GROUP BY endpoint, model
            ORDER BY sum(cost_usd) DESC, endpoint COLLATE "C" NULLS FIRST, model COLLATE "C" NULLS FIRST
            """,
            userId));
        batch.BatchCommands.Add(BatchCommand(
            $"""
            SELECT day, {SumColumns}
            FROM (
                SELECT day, {FigureColumns} FROM {S}.usage_user_day WHERE user_id = $1 AND day BETWEEN $2 AND $3
                UNION ALL
                SELECT day, {FigureColumns} FROM {PendingOf("$1")} WHERE user_id = $1 AND day BETWEEN $2 AND $3
            ) x
            GROUP BY day
            ORDER BY day DESC
            """,
            userId,
            today.AddDays(-29),
            today));

        // This month's raw rows of the user (index on user_id, created_at); rows stored before cost sources existed derive theirs.
        batch.BatchCommands.Add(BatchCommand(
            $"""
            SELECT coalesce(cost_source, CASE WHEN cost_usd IS NULL THEN 'unpriced' WHEN status = 'estimated' OR metadata ->> '{BillingTags.Estimated}' IS NOT NULL THEN 'estimated' ELSE 'reported' END),
                   count(*)::bigint, coalesce(sum(cost_usd), 0)
            FROM {S}.user_api_usage WHERE user_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1
            """,
            userId,
            month.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc),
            month.AddMonths(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc)));
        var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        var summary = ReadSummary(reader);
        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var thisMonth = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadFigures(reader, 0) : UsageFigures.Zero;

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var byEndpoint = new List<UserEndpointUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            byEndpoint.Add(new UserEndpointUsage(userId, NullableString(reader, 0), NullableString(reader, 1), ReadFigures(reader, 2)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var daily = new List<UserDailyUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            daily.Add(new UserDailyUsage(userId, reader.GetFieldValue<DateOnly>(0), ReadFigures(reader, 1)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        var bySource = new List<CostSourceUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            bySource.Add(new CostSourceUsage(CostSourceNames.Parse(reader.GetString(0)) ?? CostSource.Reported, reader.GetInt64(1), reader.GetDecimal(2)));
        }

        return new UserUsageDetail(summary, thisMonth, byEndpoint, daily) { ThisMonthByCostSource = [.. bySource.OrderBy(u => u.CostSource)] };
    }

    public async ValueTask<UsageFigures> GetUserTotalsAsync(string userId, DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var command = Command(
            $"""
            SELECT {SumColumns}
            FROM (
                SELECT {FigureColumns} FROM {S}.usage_user_day WHERE user_id = $1 AND day BETWEEN $2 AND $3
                UNION ALL
                SELECT {FigureColumns} FROM {PendingOf("$1")} WHERE user_id = $1 AND day BETWEEN $2 AND $3
            ) x
            """,
            userId,
            firstDay,
            lastDay);
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return ReadFigures(reader, 0);
    }

    public async ValueTask<IReadOnlyList<EndpointUsage>> GetEndpointUsageAsync(CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);

        // One all-time row per endpoint and model (migration 0016), whatever the length of the history, plus what is pending.
        var command = Command(
            $"""
            SELECT endpoint, model, {SumColumns}
            FROM (
                SELECT endpoint, model, {FigureColumns} FROM {S}.usage_endpoint_total
                UNION ALL
                SELECT endpoint, model, {FigureColumns} FROM {S}.usage_pending
            ) x
            GROUP BY endpoint, model
            ORDER BY sum(cost_usd) DESC, endpoint COLLATE "C" NULLS FIRST, model COLLATE "C" NULLS FIRST
            """);
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var rows = new List<EndpointUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(new EndpointUsage(NullableString(reader, 0), NullableString(reader, 1), ReadFigures(reader, 2)));
        }

        return rows;
    }

    public async ValueTask<IReadOnlyList<UserEndpointUsage>> GetUserEndpointUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        if (lastDay < firstDay)
        {
            return [];
        }

        // Whole months come from the monthly rollup (plus their pending sums); the days before and after them from the raw rows.
        var fullFrom = firstDay.Day == 1 ? firstDay : PostgresStoreContext.MonthOf(firstDay).AddMonths(1);
        var fullTo = lastDay.AddDays(1).Day == 1 ? lastDay.AddDays(1) : PostgresStoreContext.MonthOf(lastDay);
        if (fullTo <= fullFrom)
        {
            fullFrom = fullTo = lastDay.AddDays(1);
        }

        if (firstDay == fullFrom && fullTo == fullFrom.AddMonths(1) && lastDay.AddDays(1) == fullTo)
        {
            return await GetOneMonthUserEndpointUsageAsync(fullFrom, lastDay, userId, cancellationToken).ConfigureAwait(false);
        }

        // The folded month rollup plus its sums still pending, and the raw rows of the edge days (which
        // count every stored record, folded or not), in one statement (one snapshot). One user's edge
        // days read the (user_id, created_at) index; all users' read the days' partitions.
        var userFilter = userId is null ? string.Empty : " AND user_id = $7";
        var sql = $"""
            SELECT user_id, endpoint, model, {SumColumns}
            FROM (
                SELECT user_id, endpoint, model, {FigureColumns}
                FROM {S}.usage_user_endpoint_month WHERE month >= $1 AND month < $2{userFilter}
                UNION ALL
                SELECT user_id, endpoint, model, {FigureColumns}
                FROM {Pending(userId is null ? null : "$7")} WHERE day >= $1 AND day < $2 AND user_id IS NOT NULL{userFilter}
                UNION ALL
                SELECT user_id, endpoint COLLATE "C", model COLLATE "C", count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens),
                       sum(reasoning_tokens), sum(total_tokens), coalesce(sum(cost_usd), 0), sum(cache_write_tokens)
                FROM {S}.user_api_usage
                WHERE ((created_at >= $3 AND created_at < $4) OR (created_at >= $5 AND created_at < $6)) AND user_id IS NOT NULL{userFilter}
                GROUP BY 1, 2, 3
            ) x
            GROUP BY user_id, endpoint, model
            """;

        // Whole months [$1, $2); edge days [$3, $4) and [$5, $6) as timestamps.
        object[] parameters = [fullFrom, fullTo, Utc(firstDay), Utc(fullFrom), Utc(fullTo), Utc(lastDay.AddDays(1))];
        if (userId is not null)
        {
            parameters = [.. parameters, userId];
        }

        return await ReadUserEndpointRowsAsync(Command(sql, parameters), cancellationToken).ConfigureAwait(false);
    }

    // One whole month (a month's statements): its rollup rows are already one per user, endpoint and
    // model, so they are read as they are unless sums for the month are still pending; only then are
    // they grouped with those (one statement, one snapshot, as above). Grouping ~15,000 rows of numeric
    // sums was two thirds of the query's time at 5,000,000 calls.
    private async ValueTask<IReadOnlyList<UserEndpointUsage>> GetOneMonthUserEndpointUsageAsync(DateOnly month, DateOnly lastDay, string? userId, CancellationToken cancellationToken)
    {
        if (userId is null && KeepFinishedDays)
        {
            return await GetEveryUserMonthAsync(month, lastDay, cancellationToken).ConfigureAwait(false);
        }

        var userFilter = userId is null ? string.Empty : " AND user_id = $3";
        var sql = $"""
            WITH pending AS (
                SELECT user_id, endpoint, model, {FigureColumns}
                FROM {Pending(userId is null ? null : "$3")} WHERE day >= $1 AND day <= $2 AND user_id IS NOT NULL{userFilter}),
            any_pending AS (SELECT EXISTS (SELECT 1 FROM pending) AS yes)
            SELECT user_id, endpoint, model, {FigureColumns}
            FROM {S}.usage_user_endpoint_month WHERE month = $1{userFilter} AND NOT (SELECT yes FROM any_pending)
            UNION ALL
            SELECT user_id, endpoint, model, {SumColumns}
            FROM (
                SELECT user_id, endpoint, model, {FigureColumns}
                FROM {S}.usage_user_endpoint_month WHERE month = $1{userFilter}
                UNION ALL
                SELECT * FROM pending
            ) x
            WHERE (SELECT yes FROM any_pending)
            GROUP BY user_id, endpoint, model
            """;
        object[] parameters = userId is null ? [month, lastDay] : [month, lastDay, userId];
        return await ReadUserEndpointRowsAsync(Command(sql, parameters), cancellationToken).ConfigureAwait(false);
    }

    // Every user's lines of one whole month (a month's statements), kept in memory (see FinishedDays) with the versions of
    // the month's days, the count of line removals (usage_line_removals) and the snapshot they were read at. In one
    // statement (one snapshot): the versions; the lines to read, by what those say (s.read): none when every kept day
    // still has its version (0), those written since the kept snapshot when a day's version moved or a day came (1: a
    // fold writes a few users' lines at a time), every line when nothing is kept, a kept day has no version any more or a
    // line was deleted since (2) (read > 0 alone is a one-time filter: with nothing to read, no line is scanned); the
    // pending sums; and, unless nothing is read, the statement's snapshot and the count of removals. Part 0: a day's
    // version; 1: a folded line; 2: a line's pending sums, added here; 3: the snapshot, the count of removals, and the month
    // in its date column when only the lines written since were read.
    private async ValueTask<IReadOnlyList<UserEndpointUsage>> GetEveryUserMonthAsync(DateOnly month, DateOnly lastDay, CancellationToken cancellationToken)
    {
        var held = finishedDays.Month(month);
        var sql = $"""
            WITH v AS (SELECT day, version FROM {S}.usage_day_versions WHERE day >= $1 AND day <= $2),
            k AS (SELECT * FROM unnest($3::date[], $4::bigint[]) AS k (day, version)),
            r AS (SELECT coalesce((SELECT removals FROM {S}.usage_line_removals), -1) AS removals),
            s AS (
                SELECT CASE WHEN NOT $5 OR (SELECT removals FROM r) <> $7 OR EXISTS (SELECT 1 FROM k WHERE NOT EXISTS (SELECT 1 FROM v WHERE v.day = k.day)) THEN 2
                            WHEN EXISTS (SELECT 1 FROM v LEFT JOIN k ON k.day = v.day WHERE k.version IS DISTINCT FROM v.version) THEN 1
                            ELSE 0 END AS read)
            SELECT 0, NULL::text, NULL::text, NULL::text, {ZeroColumns}, day, version FROM v
            UNION ALL
            SELECT 1, user_id, endpoint, model, {FigureColumns}, NULL::date, NULL::bigint
            FROM {S}.usage_user_endpoint_month
            WHERE month = $1 AND (SELECT read FROM s) > 0 AND ((SELECT read FROM s) = 2 OR NOT pg_visible_in_snapshot(written_by, $6::pg_snapshot))
            UNION ALL
            SELECT 2, user_id, endpoint, model, {NamedSumColumns}, NULL::date, NULL::bigint
            FROM {S}.usage_pending WHERE day >= $1 AND day <= $2 AND user_id IS NOT NULL GROUP BY user_id, endpoint, model
            UNION ALL
            SELECT 3, pg_current_snapshot()::text, NULL::text, NULL::text, {ZeroColumns}, CASE WHEN read = 1 THEN $1 END, (SELECT removals FROM r)
            FROM s WHERE read > 0
            """;
        using var command = Command(sql, month, lastDay, held?.Days ?? [], held?.Versions ?? [], held is not null);
        command.Parameters.Add(new NpgsqlParameter<string?> { TypedValue = held?.Snapshot });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = held?.Removals ?? 0 });
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var versions = new SortedDictionary<DateOnly, long>();
        var folded = new List<UserEndpointUsage>();
        var pending = new List<UserEndpointUsage>();
        (string Snapshot, bool Since, long Removals)? read = null;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            switch (reader.GetInt32(0))
            {
                case 0:
                    versions[reader.GetFieldValue<DateOnly>(4 + FigureCount)] = reader.GetInt64(5 + FigureCount);
                    break;
                case 3:
                    read = (reader.GetString(1), !reader.IsDBNull(4 + FigureCount), reader.GetInt64(5 + FigureCount));
                    break;
                case var part:
                    (part == 1 ? folded : pending).Add(new UserEndpointUsage(reader.GetString(1), NullableString(reader, 2), NullableString(reader, 3), ReadFigures(reader, 4)));
                    break;
            }
        }

        // Nothing read: the kept lines are the month's. The lines written since: put in place of the kept ones. Every line:
        // ordered here, not by the server (see UserOrder). A month without versions has no rows and is not kept.
        UserEndpointUsage[] lines;
        if (read is not { } fresh)
        {
            lines = held!.Rows;
        }
        else
        {
            lines = fresh.Since ? UserOrder.Apply(held!.Rows, folded, add: false) : [.. UserOrder.Sort(folded, r => r.UserId, UserOrder.CostThenEndpoint)];
            if (versions.Count > 0)
            {
                finishedDays.KeepMonth(month, new FinishedDays.MonthLines([.. versions.Keys], [.. versions.Values], fresh.Removals, fresh.Snapshot, lines), folded.Count);
            }
        }

        return UserOrder.Apply(lines, pending, add: true);
    }

    private static async ValueTask<IReadOnlyList<UserEndpointUsage>> ReadUserEndpointRowsAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var rows = new List<UserEndpointUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(new UserEndpointUsage(reader.GetString(0), NullableString(reader, 1), NullableString(reader, 2), ReadFigures(reader, 3)));
        }

        // Ordered here, not by the server (see UserOrder).
        return UserOrder.Sort(rows, r => r.UserId, UserOrder.CostThenEndpoint);
    }

    public async ValueTask<IReadOnlyList<PeriodUsage>> GetDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var sql = $"""
            WITH n AS (
                SELECT day, count(DISTINCT user_id) AS users FROM {S}.usage_pending p
                WHERE day BETWEEN $1 AND $2 AND user_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM {S}.usage_user_day u WHERE u.user_id = p.user_id AND u.day = p.day)
                GROUP BY day)
            SELECT d.*, coalesce(a.active_users, 0) + coalesce(n.users, 0)
            FROM (
                SELECT day, {SumColumns}
                FROM (
                    SELECT day, {FigureColumns} FROM {S}.usage_endpoint_day WHERE day BETWEEN $1 AND $2
                    UNION ALL
                    SELECT day, {FigureColumns} FROM {S}.usage_pending WHERE day BETWEEN $1 AND $2
                ) x
                GROUP BY day
            ) AS d (day, {FigureColumns})
            LEFT JOIN {S}.usage_active_day a ON a.day = d.day
            LEFT JOIN n ON n.day = d.day
            ORDER BY d.day DESC
            """;
        var command = Command(sql, firstDay, lastDay);
        await using var commandScope = command.ConfigureAwait(false);
        return await ReadPeriodsAsync(command, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<PeriodUsage>> GetMonthlyUsageAsync(DateOnly fromMonth, DateOnly toMonth, CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var sql = $"""
            WITH n AS (
                SELECT month, count(DISTINCT user_id) AS users
                FROM (SELECT date_trunc('month', day)::date AS month, user_id FROM {S}.usage_pending WHERE day >= $1 AND day < $3 AND user_id IS NOT NULL) p
                WHERE NOT EXISTS (SELECT 1 FROM {S}.usage_user_month u WHERE u.user_id = p.user_id AND u.month = p.month)
                GROUP BY month)
            SELECT m.*, coalesce(a.active_users, 0) + coalesce(n.users, 0)
            FROM (
                SELECT month, {SumColumns}
                FROM (
                    SELECT month, {FigureColumns} FROM {S}.usage_endpoint_month WHERE month BETWEEN $1 AND $2
                    UNION ALL
                    SELECT date_trunc('month', day)::date, {FigureColumns} FROM {S}.usage_pending WHERE day >= $1 AND day < $3
                ) x
                GROUP BY month
            ) AS m (month, {FigureColumns})
            LEFT JOIN {S}.usage_active_month a ON a.month = m.month
            LEFT JOIN n ON n.month = m.month
            ORDER BY m.month DESC
            """;
        var command = Command(sql, PostgresStoreContext.MonthOf(fromMonth), PostgresStoreContext.MonthOf(toMonth), PostgresStoreContext.MonthOf(toMonth).AddMonths(1));
        await using var commandScope = command.ConfigureAwait(false);
        return await ReadPeriodsAsync(command, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<UserDailyUsage>> GetUserDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default)
    {
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        if (userId is null && KeepFinishedDays && lastDay >= firstDay)
        {
            return await GetEveryUserDailyUsageAsync(firstDay, lastDay, cancellationToken).ConfigureAwait(false);
        }

        // The rollup rows as they are, then the pending rows summed per user and day (only those few are
        // grouped: grouping every rollup row of a month for all users tripled the time); a day in both is
        // added up here, where the rows are ordered (joining them in the server cost as much as the read).
        var userFilter = userId is null ? " AND user_id IS NOT NULL" : " AND user_id = $3";
        var sql = $"""
            SELECT user_id, day, {FigureColumns} FROM {S}.usage_user_day WHERE day BETWEEN $1 AND $2{userFilter}
            UNION ALL
            SELECT user_id, day, {NamedSumColumns} FROM {Pending(userId is null ? null : "$3")} WHERE day BETWEEN $1 AND $2{userFilter} GROUP BY user_id, day
            """;
        using var command = userId is null ? Command(sql, firstDay, lastDay) : Command(sql, firstDay, lastDay, userId);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var rows = new List<UserDailyUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(new UserDailyUsage(reader.GetString(0), reader.GetFieldValue<DateOnly>(1), ReadFigures(reader, 2)));
        }

        // Ordered here, not by the server (see UserOrder); one row per user and day.
        return UserOrder.Sort(rows, r => r.UserId, static (a, b) => a.Date.CompareTo(b.Date), static (a, b) => a with { Figures = a.Figures + b.Figures });
    }

    // Every user's days (the forecasts' read): the days held in memory whose version has not moved are taken from there
    // (see FinishedDays); the others are read from the rollup, each day through the day index (a nested loop: OFFSET 0
    // keeps the subquery from being pulled up into a join over the whole range), with the versions of the range and the
    // pending sums of every day, in one statement (one snapshot). Part 0: a day's version; 1: a day's rollup rows read
    // again; 2: a user's day still pending (added to the rollup rows when ordered, as above).
    private async ValueTask<IReadOnlyList<UserDailyUsage>> GetEveryUserDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken)
    {
        var held = finishedDays.DaysHeld(firstDay, lastDay);
        var sql = $"""
            WITH v AS (SELECT day, version FROM {S}.usage_day_versions WHERE day BETWEEN $1 AND $2),
            kept AS (SELECT k.day FROM unnest($3::date[], $4::bigint[]) AS k (day, version) JOIN v ON v.day = k.day AND v.version = k.version),
            reread AS (SELECT $1 + i AS day FROM generate_series(0, $2 - $1) AS i WHERE $1 + i NOT IN (SELECT day FROM kept))
            SELECT 0, NULL::text, day, version, {ZeroColumns} FROM v
            UNION ALL
            SELECT 1, u.user_id, u.day, NULL::bigint, {Qualified("u")}
            FROM reread r CROSS JOIN LATERAL (SELECT * FROM {S}.usage_user_day d WHERE d.day = r.day OFFSET 0) u
            UNION ALL
            SELECT 2, user_id, day, NULL::bigint, {NamedSumColumns} FROM {S}.usage_pending WHERE day BETWEEN $1 AND $2 AND user_id IS NOT NULL GROUP BY user_id, day
            """;
        using var command = Command(sql, firstDay, lastDay, held.Select(h => h.Day).ToArray(), held.Select(h => h.Version).ToArray());
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var versions = new Dictionary<DateOnly, long>();
        var reread = new Dictionary<DateOnly, List<UserDailyUsage>>();
        var pending = new List<UserDailyUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var day = reader.GetFieldValue<DateOnly>(2);
            switch (reader.GetInt32(0))
            {
                case 0:
                    versions[day] = reader.GetInt64(3);
                    break;
                case 1:
                    if (!reread.TryGetValue(day, out var ofDay))
                    {
                        reread.Add(day, ofDay = []);
                    }

                    ofDay.Add(new UserDailyUsage(reader.GetString(1), day, ReadFigures(reader, 4)));
                    break;
                default:
                    pending.Add(new UserDailyUsage(reader.GetString(1), day, ReadFigures(reader, 4)));
                    break;
            }
        }

        // A day held at the version the store still has was not read again (kept); every other day of the range was, and is
        // held from now on at its version (a day without one has no rows at all and is never held).
        var days = new SortedList<DateOnly, IReadOnlyList<UserDailyUsage>>(versions.Count);
        foreach (var (day, version, rows) in held)
        {
            if (versions.TryGetValue(day, out var current) && current == version)
            {
                days.Add(day, rows);
            }
        }

        finishedDays.KeepDays(versions
            .Where(v => !days.ContainsKey(v.Key))
            .Select(v => (v.Key, v.Value, reread.TryGetValue(v.Key, out var ofDay) ? ofDay.ToArray() : [])));
        foreach (var (day, ofDay) in reread)
        {
            days.TryAdd(day, ofDay);
        }

        return ByUserThenDay(days.Values, pending);
    }

    /// <summary>
    /// Every user's rows in user-id order (ordinal, as the in-memory store orders them), each user's by day: the rollup
    /// rows of each day (at most one per user) taken day after day, so each user's rows come in day order with no sort,
    /// then the pending rows (one per user and day), each added to the user's row of that day or put in its place. The
    /// users' lists are returned as they are, in user order (see <see cref="UserRuns"/>), not copied into one array.
    /// </summary>
    private static UserRuns ByUserThenDay(IEnumerable<IReadOnlyList<UserDailyUsage>> daysInOrder, List<UserDailyUsage> pending)
    {
        var byUser = new Dictionary<string, List<UserDailyUsage>>(StringComparer.Ordinal);
        List<UserDailyUsage> Of(string user)
        {
            if (!byUser.TryGetValue(user, out var own))
            {
                byUser.Add(user, own = []);
            }

            return own;
        }

        foreach (var ofDay in daysInOrder)
        {
            foreach (var row in ofDay)
            {
                Of(row.UserId).Add(row);
            }
        }

        foreach (var row in pending)
        {
            var own = Of(row.UserId);
            var at = own.Count;
            while (at > 0 && own[at - 1].Date > row.Date)
            {
                at--;
            }

            if (at > 0 && own[at - 1].Date == row.Date)
            {
                own[at - 1] = own[at - 1] with { Figures = own[at - 1].Figures + row.Figures };
            }
            else
            {
                own.Insert(at, row);
            }
        }

        var users = byUser.Keys.ToArray();
        Array.Sort(users, StringComparer.Ordinal);
        return new UserRuns([.. users.Select(u => byUser[u])]);
    }

    public async IAsyncEnumerable<UsageRecord> ExportAsync(UsageExportQuery query, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        await context.WhenReadyAsync(cancellationToken).ConfigureAwait(false);
        var conditions = new List<string>();
        var parameters = new List<object>();
        if (query.From is DateOnly from)
        {
            parameters.Add(from.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
            conditions.Add($"created_at >= ${parameters.Count}");
        }

        if (query.To is DateOnly to)
        {
            parameters.Add(to.AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
            conditions.Add($"created_at < ${parameters.Count}");
        }

        if (query.UserId is string user)
        {
            parameters.Add(user);
            conditions.Add($"user_id = ${parameters.Count}");
        }

        var where = conditions.Count == 0 ? string.Empty : " WHERE " + string.Join(" AND ", conditions);
        var command = Command($"SELECT {PostgresSql.Columns} FROM {S}.user_api_usage{where} ORDER BY created_at, id", [.. parameters]);
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = 0;

        // Rows are small: ReadAsync buffers each whole row, so the getters never wait on the socket
        // (with SequentialAccess a row split across reads made them block synchronously).
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var tags = new TagCache();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return ReadRecord(reader, tags);
        }
    }

    internal static UsageRecord ReadRecord(NpgsqlDataReader reader, TagCache? tags = null)
    {
        // Columns in PostgresSql.Columns order, read in order (the reader is sequential).
        var id = reader.GetGuid(0);
        var createdAt = new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc));
        var userId = NullableString(reader, 2);
        var endpoint = NullableString(reader, 3);
        var operation = reader.GetString(4);
        var requestModel = NullableString(reader, 5);
        var model = NullableString(reader, 6);
        var serviceTier = NullableString(reader, 7);
        var input = reader.GetInt64(8);
        var cached = reader.GetInt64(9);
        var output = reader.GetInt64(10);
        var reasoning = reader.GetInt64(11);
        var audioIn = reader.GetInt64(12);
        var audioOut = reader.GetInt64(13);
        var total = reader.GetInt64(14);
        decimal? cost = reader.IsDBNull(15) ? null : reader.GetDecimal(15);
        var priceId = NullableString(reader, 16);
        var duration = reader.GetDouble(17);
        var status = UsageStatusNames.Parse(reader.GetString(18));
        int? http = reader.IsDBNull(19) ? null : reader.GetInt32(19);
        var streaming = reader.GetBoolean(20);
        var session = NullableString(reader, 21);
        var problem = NullableString(reader, 22);
        var metadata = NullableString(reader, 23);
        var cacheWrite = reader.GetInt64(24);
        var source = NullableString(reader, 25);
        return new UsageRecord
        {
            Id = id,
            CreatedAt = createdAt,
            UserId = userId,
            Endpoint = endpoint,
            Operation = operation,
            RequestModel = requestModel,
            Model = model,
            ServiceTier = serviceTier,
            InputTokens = input,
            CachedInputTokens = cached,
            OutputTokens = output,
            ReasoningTokens = reasoning,
            AudioInputTokens = audioIn,
            AudioOutputTokens = audioOut,
            TotalTokens = total,
            CostUsd = cost,
            PriceId = priceId,
            DurationMs = duration,
            Status = status,
            HttpStatus = http,
            Streaming = streaming,
            SessionId = session,
            ProblemId = problem,
            Tags = metadata is null ? null : tags is null ? ParseTags(metadata) : tags.Get(metadata),
            CacheWriteTokens = cacheWrite,

            // Rows stored before cost sources existed have none: what CostSourceNames.Effective makes of a
            // record without one (unpriced without a cost, else reported).
            CostSource = CostSourceNames.Parse(source) ?? (cost is null ? CostSource.Unpriced : CostSource.Reported),
        };
    }

    /// <summary>The export's rows without a record per row: what the CSV export reads (see <see cref="PostgresExportRows"/>).</summary>
    public IAsyncEnumerable<UsageExportBlock> ExportBlocksAsync(UsageExportQuery query, CancellationToken cancellationToken = default) =>
        PostgresExportRows.ReadAsync(context, query, cancellationToken);

    internal static Dictionary<string, string>? ParseTags(string metadata) => JsonSerializer.Deserialize(metadata, PostgresJsonContext.Default.DictionaryStringString);

    internal static Dictionary<string, string>? ParseTags(ReadOnlySpan<byte> metadata) => JsonSerializer.Deserialize(metadata, PostgresJsonContext.Default.DictionaryStringString);

    /// <summary>
    /// Metadata of one export, parsed once per distinct text: calls repeat a few tag sets (grade,
    /// subject...), so most rows share a parsed, read-only dictionary instead of parsing their own.
    /// </summary>
    internal sealed class TagCache
    {
        private const int MaxEntries = 4096;
        private readonly Dictionary<string, IReadOnlyDictionary<string, string>?> _parsed = new(StringComparer.Ordinal);

        public IReadOnlyDictionary<string, string>? Get(string metadata)
        {
            if (_parsed.TryGetValue(metadata, out var tags))
            {
                return tags;
            }

            if (_parsed.Count >= MaxEntries)
            {
                _parsed.Clear();
            }

            tags = ParseTags(metadata)?.AsReadOnly();
            _parsed[metadata] = tags;
            return tags;
        }
    }

    /// <summary>The figure columns of the relation <paramref name="alias"/>.</summary>
    private static string Qualified(string alias) => string.Join(", ", Figures.Select(c => $"{alias}.{c}"));

    /// <summary>Each figure column as the sum of two sides of an outer join (a missing side counts 0).</summary>
    private static string Combined(string a, string b) =>
        string.Join(", ", Figures.Select(c => $"coalesce({a}.{c}, 0) + coalesce({b}.{c}, 0) AS {c}"));

    private static DateTime Utc(DateOnly day) => day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);

    private static string? NullableString(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    /// <summary>Reads <see cref="FigureColumns"/> (or <see cref="SumColumns"/>) starting at <paramref name="first"/>.</summary>
    private static UsageFigures ReadFigures(NpgsqlDataReader reader, int first) => new(
        reader.GetInt64(first),
        reader.GetInt64(first + 1),
        reader.GetInt64(first + 2),
        reader.GetInt64(first + 3),
        reader.GetInt64(first + 4),
        reader.GetInt64(first + 5),
        reader.GetDecimal(first + 6))
    {
        CacheWriteTokens = reader.GetInt64(first + 7),
    };

    private static UserUsageSummary ReadSummary(NpgsqlDataReader reader) => new(
        reader.GetString(0),
        ReadFigures(reader, 1),
        reader.IsDBNull(1 + FigureCount) ? null : new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(1 + FigureCount), DateTimeKind.Utc)));

    private static async Task<IReadOnlyList<PeriodUsage>> ReadPeriodsAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var rows = new List<PeriodUsage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(new PeriodUsage(reader.GetFieldValue<DateOnly>(0), ReadFigures(reader, 1), reader.GetInt64(1 + FigureCount)));
        }

        return rows;
    }

    private NpgsqlCommand Command(string sql, params object[] parameters)
    {
        var command = context.DataSource.CreateCommand(sql);
        command.CommandTimeout = context.CommandTimeout;
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return command;
    }

    private static NpgsqlBatchCommand BatchCommand(string sql, params object[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return command;
    }
}
