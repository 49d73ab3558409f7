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
    public void Observe(UsageRecord record, DateTimeOffset observedAt)
    {
        if (record.UserId is null || (record.CostUsd is null or 0m && record.TotalTokens == 0))
        {
            return;
        }

        var user = For(record.UserId);
        user.AddPending(new PendingRecord(record.Id, record.CreatedAt, record.CostUsd ?? 0m, record.TotalTokens, observedAt));
        user.Attach(record);
    }

    /// <summary>A reservation in a shared store held by a call of this process, and the records the call produced so far.</summary>
    internal sealed class SharedHold(Guid id)
    {
        public Guid Id => id;

        public decimal CostUsd { get; set; }

        public long Tokens { get; set; }

        public List<(Guid Id, DateTimeOffset CreatedAt)> Records { get; } = [];
    }

    internal readonly record struct PendingRecord(Guid Id, DateTimeOffset CreatedAt, decimal CostUsd, long Tokens, DateTimeOffset ObservedAt);

    internal sealed class UserLedger
    {
        private readonly Lock _gate = new();
        private readonly List<PendingRecord> _pending = [];
        private readonly List<SharedHold> _open = [];
        private decimal _reservedCost;
        private long _reservedTokens;

        /// <summary>Serialises check-and-reserve for one user, so parallel calls see each other's reservations.</summary>
        public SemaphoreSlim CheckGate { get; } = new(1, 1);

        public void AddPending(PendingRecord record)
        {
            lock (_gate)
            {
                _pending.Add(record);
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
        /// Settles a record against a hold of this user: the oldest that has none yet, else the newest.
        /// Which call's hold takes it does not change the user's total, only that it is counted once.
        /// </summary>
        public void Attach(UsageRecord record)
        {
            lock (_gate)
            {
                if (_open.Count == 0)
                {
                    return;
                }

                var hold = _open.Find(h => h.Records.Count == 0) ?? _open[^1];
                hold.CostUsd += record.CostUsd ?? 0m;
                hold.Tokens += record.TotalTokens;
                hold.Records.Add((record.Id, record.CreatedAt));
            }
        }

        public (decimal CostUsd, long Tokens, List<(Guid Id, DateTimeOffset CreatedAt)> Records) Close(SharedHold hold)
        {
            lock (_gate)
            {
                _open.Remove(hold);
                return (hold.CostUsd, hold.Tokens, [.. hold.Records]);
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
