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

        For(record.UserId).AddPending(new PendingRecord(record.Id, record.CreatedAt, record.CostUsd ?? 0m, record.TotalTokens, observedAt));
    }

    internal readonly record struct PendingRecord(Guid Id, DateTimeOffset CreatedAt, decimal CostUsd, long Tokens, DateTimeOffset ObservedAt);

    internal sealed class UserLedger
    {
        private readonly Lock _gate = new();
        private readonly List<PendingRecord> _pending = [];
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
