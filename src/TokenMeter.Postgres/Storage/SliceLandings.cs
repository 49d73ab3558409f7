using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Follows the records of calls decided from budget slices until they are stored, so a slice's
/// hold stops counting a call's real cost in the very transaction that stores the call's records
/// (see <c>HeadroomSlices</c> in the budgets folder; this class sits with the store, whose batch transaction uses it). A record is followed from the moment it is priced (before the
/// writer can see it): when its call ends, its slice takes it (<see cref="TryAssign"/>); when the
/// writer stores it, the batch's transaction adds minus its cost to its slice's <i>landed</i> row
/// (a hold of the slice's user, month and lease holding minus what has landed, so the hold and the
/// landed row together count what is not stored yet; one row per slice, written only by the writer
/// of the instance that holds the slice). A record stored before its call ended is counted by the
/// rollups and by the slice's hold until the hold is lowered by a later adjustment (counted twice a
/// moment, never not at all).
/// </summary>
internal sealed class SliceLandings
{
    private readonly ConcurrentDictionary<Guid, Ticket> _tickets = new();
    private readonly ConcurrentQueue<SliceAdjust> _late = new();

    /// <summary>Records followed now (tests).</summary>
    internal int Followed => _tickets.Count;

    /// <summary>Follows a record attached to a call's hold, before the writer can store it.</summary>
    public void Watch(UsageRecord record, DateTimeOffset now) =>
        _tickets[record.Id] = new Ticket(record.CostUsd ?? 0m, record.TotalTokens, now);

    /// <summary>
    /// Hands a call's records to its slice: each is taken off the slice's hold by the transaction
    /// that stores it. False, and nothing taken, when a record is not followed (its call settles the
    /// way an exact hold does). <paramref name="storedCost"/> and <paramref name="storedTokens"/>:
    /// those already stored (counted by the rollups; the slice's hold must be lowered by them).
    /// </summary>
    public bool TryAssign(IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> records, SliceTarget target, out decimal storedCost, out long storedTokens)
    {
        storedCost = 0m;
        storedTokens = 0;
        for (var i = 0; i < records.Count; i++)
        {
            if (!_tickets.ContainsKey(records[i].Id))
            {
                return false;
            }
        }

        // Only this call's settle takes its records' tickets out before they are assigned (a sweep an hour later aside).
        for (var i = 0; i < records.Count; i++)
        {
            if (!_tickets.TryGetValue(records[i].Id, out var ticket))
            {
                continue;
            }

            lock (ticket)
            {
                if (ticket.Stored)
                {
                    storedCost += ticket.CostUsd;
                    storedTokens += ticket.Tokens;
                    _tickets.TryRemove(records[i].Id, out _);
                }
                else
                {
                    ticket.Target = target;
                }
            }
        }

        return true;
    }

    /// <summary>Stops following records (their call settles as an exact hold, which follows them itself).</summary>
    public void Forget(IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> records)
    {
        if (_tickets.IsEmpty)
        {
            return;
        }

        foreach (var (id, _) in records)
        {
            _tickets.TryRemove(id, out _);
        }
    }

    /// <summary>What a batch about to be stored means for the slices: null when it holds no followed record.</summary>
    public Landing? Prepare(IReadOnlyList<UsageRecord> records)
    {
        if (_tickets.IsEmpty)
        {
            return null;
        }

        Landing? landing = null;
        foreach (var record in records)
        {
            if (!_tickets.TryGetValue(record.Id, out var ticket))
            {
                continue;
            }

            landing ??= new Landing();
            lock (ticket)
            {
                if (ticket.Target is { } target)
                {
                    landing.Assigned.Add((record.Id, record.CreatedAt, ticket.CostUsd, ticket.Tokens, target));
                }
                else
                {
                    landing.Watched.Add((record.Id, ticket));
                }
            }
        }

        return landing;
    }

    /// <summary>
    /// The statement that takes a batch's followed records off their slices' holds, in the batch's
    /// transaction; with <paramref name="onlyNew"/> only the records not stored yet (run before a
    /// replay inserts the new ones).
    /// </summary>
    public static NpgsqlCommand Command(string sql, Landing landing, bool onlyNew, NpgsqlConnection connection, NpgsqlTransaction transaction, int timeout)
    {
        var rows = landing.Assigned;
        var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = timeout };
        var p = command.Parameters;
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. rows.Select(r => r.Target.LandedId)] });
        p.Add(new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(r => r.Target.UserId)] });
        p.Add(new NpgsqlParameter<DateOnly[]> { TypedValue = [.. rows.Select(r => r.Target.Month)] });
        p.Add(new NpgsqlParameter<decimal[]> { TypedValue = [.. rows.Select(r => r.CostUsd)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Numeric });
        p.Add(new NpgsqlParameter<long[]> { TypedValue = [.. rows.Select(r => r.Tokens)] });
        p.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. rows.Select(r => r.Target.ExpiresAt.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. rows.Select(r => r.Id)] });
        p.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. rows.Select(r => r.CreatedAt.UtcDateTime)], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        p.Add(new NpgsqlParameter<bool> { TypedValue = onlyNew });
        return command;
    }

    /// <summary>
    /// After the batch's transaction committed: its followed records are stored. Those taken off
    /// their slices in it are no longer followed; those whose call had not ended are marked stored
    /// (their slice lowers its hold by them when the call ends); those whose call ended while the
    /// batch was being written queue an adjustment lowering their slice's hold.
    /// </summary>
    public void Stored(Landing landing)
    {
        foreach (var row in landing.Assigned)
        {
            _tickets.TryRemove(row.Id, out _);
        }

        foreach (var (id, ticket) in landing.Watched)
        {
            lock (ticket)
            {
                if (ticket.Target is { } target)
                {
                    if (_tickets.TryRemove(id, out _))
                    {
                        _late.Enqueue(new SliceAdjust(target.UserId, target.HoldId, 0, ticket.CostUsd, ticket.Tokens));
                    }
                }
                else
                {
                    ticket.Stored = true;
                }
            }
        }
    }

    /// <summary>Takes the adjustments queued by <see cref="Stored"/>.</summary>
    public void TakeLate(List<SliceAdjust> into)
    {
        while (_late.TryDequeue(out var adjust))
        {
            into.Add(adjust);
        }
    }

    /// <summary>Forgets records followed since before <paramref name="before"/> (their holds have lapsed long since).</summary>
    public void Sweep(DateTimeOffset before)
    {
        foreach (var (id, ticket) in _tickets)
        {
            if (ticket.At < before)
            {
                _tickets.TryRemove(id, out _);
            }
        }
    }

    /// <summary>A followed record: its cost, when it was priced, and the slice that took it (once its call ended).</summary>
    internal sealed class Ticket(decimal costUsd, long tokens, DateTimeOffset at)
    {
        public decimal CostUsd => costUsd;

        public long Tokens => tokens;

        public DateTimeOffset At => at;

        public SliceTarget? Target { get; set; }

        public bool Stored { get; set; }
    }

    /// <summary>A batch's followed records: those taken by a slice, and those whose call had not ended yet.</summary>
    internal sealed class Landing
    {
        public List<(Guid Id, DateTimeOffset CreatedAt, decimal CostUsd, long Tokens, SliceTarget Target)> Assigned { get; } = [];

        public List<(Guid Id, Ticket Ticket)> Watched { get; } = [];
    }
}

/// <summary>A budget slice's hold as its records see it: the hold, its landed row, its user, month and lease.</summary>
/// <param name="HoldId">The slice's hold.</param>
/// <param name="LandedId">The row holding minus what has been stored of the slice's calls.</param>
/// <param name="UserId">The user.</param>
/// <param name="Month">The month charged.</param>
/// <param name="ExpiresAt">When the hold lapses (the landed row lapses with it).</param>
internal sealed record SliceTarget(Guid HoldId, Guid LandedId, string UserId, DateOnly Month, DateTimeOffset ExpiresAt);

/// <summary>
/// A headroom slice's adjustment: a budget slice's hold less <see cref="CostUsd"/> and
/// <see cref="Amount"/> tokens (<see cref="HoldId"/> set, <see cref="Key"/> the user), or
/// <see cref="Amount"/> added to the counter of <see cref="Key"/> and <see cref="Slot"/>.
/// </summary>
internal sealed record SliceAdjust(string Key, Guid? HoldId, long Slot, decimal CostUsd, long Amount);
