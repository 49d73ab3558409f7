using System.Collections.Concurrent;

namespace TokenMeter.Budgets;

/// <summary>
/// In-process spend the store cannot show yet: calls in flight (reservations) and finished calls
/// the background writer has not stored yet (pending records), per user.
/// </summary>
internal sealed class BudgetLedger
{
    private readonly ConcurrentDictionary<string, UserLedger> _users = new(StringComparer.Ordinal);

    public UserLedger For(string userId) => _users.GetOrAdd(userId, static _ => new UserLedger());

    /// <summary>Notes a finished, priced call (fed by the metering path).</summary>
    /// <param name="record">The record.</param>
    /// <param name="observedAt">Now.</param>
    /// <param name="retention">How long a record not reported stored is counted at most.</param>
    /// <returns>Whether the record was attached to the shared holds of its user's calls in flight (see <see cref="UserLedger.Attach"/>).</returns>
    public bool Observe(UsageRecord record, DateTimeOffset observedAt, TimeSpan retention)
    {
        if (record.UserId is null || (record.CostUsd is null or 0m && record.TotalTokens == 0))
        {
            return false;
        }

        var user = For(record.UserId);
        user.AddPending(new PendingRecord(record.Id, record.CreatedAt, record.CostUsd ?? 0m, record.TotalTokens, observedAt), observedAt - retention);
        return user.Attach(record);
    }

    /// <summary>
    /// Forgets records the writer reports stored (told after each batch is in the store): without it a
    /// user whose checks never read the ledger (no limit of their own, or checks decided by a shared
    /// store) kept every record of their calls until the retention ran out.
    /// </summary>
    public void Stored(IReadOnlyList<UsageRecord> records)
    {
        // Grouped by the user's ledger (one lookup per record), then one pass over each ledger's list.
        Dictionary<UserLedger, HashSet<Guid>>? byUser = null;
        foreach (var record in records)
        {
            if (record.UserId is null || !_users.TryGetValue(record.UserId, out var user))
            {
                continue;
            }

            byUser ??= [];
            if (!byUser.TryGetValue(user, out var ids))
            {
                ids = [];
                byUser.Add(user, ids);
            }

            ids.Add(record.Id);
        }

        if (byUser is null)
        {
            return;
        }

        foreach (var (user, ids) in byUser)
        {
            user.RemoveStored(ids);
        }
    }

    /// <summary>A reservation in a shared store held by a call of this process.</summary>
    internal class SharedHold(Guid id)
    {
        public Guid Id => id;
    }

    internal readonly record struct PendingRecord(Guid Id, DateTimeOffset CreatedAt, decimal CostUsd, long Tokens, DateTimeOffset ObservedAt);

    internal sealed class UserLedger
    {
        private readonly Lock _gate = new();
        private readonly List<PendingRecord> _pending = [];
        private readonly List<SharedHold> _open = [];
        private readonly List<(Guid Id, DateTimeOffset CreatedAt)> _unsettled = [];
        private decimal _unsettledCost;
        private long _unsettledTokens;
        private decimal _reservedCost;
        private long _reservedTokens;

        /// <summary>Serialises check-and-reserve for one user, so parallel calls see each other's reservations.</summary>
        public SemaphoreSlim CheckGate { get; } = new(1, 1);

        /// <summary>Notes a record not stored yet; records observed before <paramref name="observedAfter"/> are dropped in bulk once many are held.</summary>
        public void AddPending(PendingRecord record, DateTimeOffset observedAfter)
        {
            lock (_gate)
            {
                // A backstop for records never reported stored: pruned once the list is long and its
                // oldest entry is past the retention (the list is in the order records were observed).
                if (_pending.Count >= PruneAtCount && _pending[0].ObservedAt < observedAfter)
                {
                    _pending.RemoveAll(p => p.ObservedAt < observedAfter);
                }

                _pending.Add(record);
            }
        }

        internal const int PruneAtCount = 1024;

        internal int PendingCount
        {
            get
            {
                lock (_gate)
                {
                    return _pending.Count;
                }
            }
        }

        public void Open(SharedHold hold)
        {
            lock (_gate)
            {
                _open.Add(hold);
            }
        }

        /// <summary>
        /// Notes a record of this user while calls of this process hold shared reservations: the
        /// next of them to end settles it (see <see cref="Close"/>).
        /// </summary>
        /// <returns>Whether the record was attached (false: no call of this process holds one).</returns>
        public bool Attach(UsageRecord record)
        {
            lock (_gate)
            {
                if (_open.Count == 0)
                {
                    return false;
                }

                _unsettled.Add((record.Id, record.CreatedAt));
                _unsettledCost += record.CostUsd ?? 0m;
                _unsettledTokens += record.TotalTokens;
                return true;
            }
        }

        /// <summary>
        /// Ends a call's hold and hands it every record noted so far, its own included: a call's
        /// records are priced before it ends, so each record moves into a settled hold no later than
        /// the end of its own call — never dropped with another call's estimate while it is still
        /// on its way to the store. (Handing each record to "its" hold instead let a call that ended
        /// first release its estimate while its record sat on a hold still in flight: the shared
        /// store counted neither, and a burst over several instances passed the limit.)
        /// </summary>
        public (decimal CostUsd, long Tokens, List<(Guid Id, DateTimeOffset CreatedAt)> Records) Close(SharedHold hold)
        {
            lock (_gate)
            {
                _open.Remove(hold);
                var taken = (_unsettledCost, _unsettledTokens, new List<(Guid Id, DateTimeOffset CreatedAt)>(_unsettled));
                _unsettled.Clear();
                _unsettledCost = 0m;
                _unsettledTokens = 0;
                return taken;
            }
        }

        public void Reserve(BudgetEstimate estimate)
        {
            lock (_gate)
            {
                _reservedCost += estimate.CostUsd;
                _reservedTokens += estimate.Tokens;
            }
        }

        public void Release(BudgetEstimate estimate)
        {
            lock (_gate)
            {
                _reservedCost -= estimate.CostUsd;
                _reservedTokens -= estimate.Tokens;
            }
        }

        public (decimal Cost, long Tokens) Reserved
        {
            get
            {
                lock (_gate)
                {
                    return (_reservedCost, _reservedTokens);
                }
            }
        }

        /// <summary>Drops records too old to matter and returns the oldest creation time of those left.</summary>
        public DateTimeOffset? Prune(DateTimeOffset monthStart, DateTimeOffset observedAfter)
        {
            lock (_gate)
            {
                _pending.RemoveAll(p => p.CreatedAt < monthStart || p.ObservedAt < observedAfter);
                return _pending.Count == 0 ? null : _pending.Min(p => p.CreatedAt);
            }
        }

        /// <summary>Forgets the records the store now holds.</summary>
        public void RemoveStored(HashSet<Guid> storedIds)
        {
            lock (_gate)
            {
                _pending.RemoveAll(p => storedIds.Contains(p.Id));
            }
        }

        public (decimal Cost, long Tokens) PendingSince(DateTimeOffset monthStart)
        {
            lock (_gate)
            {
                decimal cost = 0m;
                long tokens = 0;
                foreach (var p in _pending)
                {
                    if (p.CreatedAt >= monthStart)
                    {
                        cost += p.CostUsd;
                        tokens += p.Tokens;
                    }
                }

                return (cost, tokens);
            }
        }

        public List<Guid> PendingIds()
        {
            lock (_gate)
            {
                return _pending.ConvertAll(p => p.Id);
            }
        }
    }
}
