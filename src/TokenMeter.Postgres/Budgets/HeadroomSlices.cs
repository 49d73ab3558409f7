using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Npgsql;
using TokenMeter.Budgets;
using TokenMeter.Metering;
using TokenMeter.Postgres.Diagnostics;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// Headroom slices (local leases of a limit's headroom, as in distributed rate limiters): an
/// instance claims from PostgreSQL, in one round trip, a slice of a user's headroom under each
/// limit a call checks — some calls' worth of the requests window, of the tokens window and of the
/// month's budget — and decides that user's next calls in-process (microseconds) until the slice is
/// used up or its lifetime (<see cref="PostgresStoreOptions.SliceLifetime"/>) ends. What holds:
/// <list type="bullet">
/// <item><b>Never past a limit.</b> A claim is decided by the same statement as an exact check, on
/// the limit, the window's counters, the month's spend (rollups + pending sums) and every hold in
/// force, and is granted 1 + at most a quarter of what is left after its first call (never more than
/// asked). Near a limit a claim is therefore exactly one call, decided by the database; the slices
/// of every instance together never hold more than the limit's headroom, so every guarantee of the
/// exact check holds: a budget burst over any number of instances spends at most the limit + one
/// call (the calls' estimates are worst cases), requests per minute admit at most the limit, tokens
/// per minute at most the limit + one call's estimate.</item>
/// <item><b>Sliding windows.</b> A rate slice of more than one call, claimed in second s and usable
/// until s + L (L its lifetime), is written into the counter of second s + L: a counter counts from
/// the moment it is written until its second + 61 s (migration 0009), so the slice counts, whole, in
/// every window that contains any use of it. When the slice ends (used up, lifetime over, dropped,
/// shutdown) its instance moves what was used to the counter of the second it ended in (every use
/// came before, so every window containing a use still counts it) and gives the unused rest back.
/// Until then the whole slice counts: others may be refused sooner, never let through past the
/// limit.</item>
/// <item><b>Budgets: one ledger.</b> A budget slice is one hold in <c>tokenmeter_budget_holds</c> of
/// its calls' worth (so what enforcement reads stays rollups + pending + holds, no second counter).
/// A call decided from it takes its estimate from the slice in-process and settles in-process, with
/// no database work: what it did not use of its estimate goes back into the slice, its real cost
/// stays in the slice's hold. Its records are followed from the moment they are priced, before the
/// writer can see them (<see cref="SliceLandings"/>): the transaction that stores them adds minus
/// their cost to the slice's landed row (a hold of the slice's user, month and lease, written only
/// by this instance's writer), so the call's cost leaves the holds in the very snapshot in which its
/// records appear, never before (counted by one or the other, never by neither). A replay takes off
/// only the records it stores. A record stored before its call ended is counted by both a moment,
/// until an adjustment (with the next claim, or the next sweep) lowers the slice's hold; a call that
/// cost more than its estimate grows the hold by what the slice lacks. A call whose records were not
/// followed (slices not live when they were priced) or that ends while the instance stops becomes
/// its own hold of its real cost, counting until its records land, and leaves the slice's hold in
/// one statement (written twice, counted once). The unused rest is given back when the slice ends;
/// what its calls still in flight did not use, as they end.</item>
/// <item><b>Lease.</b> A budget slice's hold lapses at its claim + lifetime + the reservation lease
/// (a call started at the end of the lifetime may run a whole lease), its landed row with it, so a
/// killed instance's unused slices are back at the latest then (a record it had spooled is stored
/// once when replayed, its dead slice's hold counting it too until it lapses); a rate slice's
/// counter leaves the window 61 s after its last second.</item>
/// <item><b>Changes.</b> A budget changed through any instance is announced with <c>NOTIFY</c> in the
/// same transaction; every instance LISTENs and drops (and gives back) the slices of that user, or
/// of every user for the default budget, within milliseconds. A claim in flight when a change
/// arrives still decides its own call (it read the store before the change) but its slice is given
/// back at once, as is a background claim's. Without the LISTEN connection (at start, or lost)
/// every check goes to the database exactly, as with slices off. Rate limits come from each
/// instance's options: a slice claimed under another limit is not used.</item>
/// <item><b>Size.</b> A user's first claim asks for 2 calls' worth; each further claim while the user
/// keeps calling asks for twice the last (at most 4,096: a claim reads the user's spend and windows,
/// 1–5 ms of the database's CPU under load, so a user calling hundreds of times a second pays it
/// once per thousands of calls); a slice that ends mostly unused halves the next. Unused headroom in other instances' slices may refuse a call early, by at most what those
/// slices hold (each at most a quarter of the headroom left at its claim), for at most the slice
/// lifetime.</item>
/// <item><b>Lifetime: the next slice is claimed before this one ends.</b> When a call decided from a
/// slice leaves it less than an eighth of its lifetime plus the longest pause between the user's
/// calls lately (at most half the lifetime in all: a user who pauses up to three eighths of it finds
/// the next slice when calling again), or (a slice of 8 calls or more) fewer than an eighth of its
/// calls (<see cref="PreClaimShare"/>), and no claim of that limit is in flight,
/// the instance claims the next slice in the background while the current one keeps deciding calls,
/// so a busy user's calls do not wait for a round trip when a slice ends. It is the same statement
/// as any claim, sized as a claim made then would be and granted the same way, for a first call the
/// size of the one that started it (decided from the current slice, so the new slice keeps all it
/// is granted). It is decided against every hold in force, the current slice's whole hold or counter
/// included: while the two overlap (one round trip) both count, so others may be refused sooner by
/// at most the current slice's unused part, never let through past a limit; a rate slice claimed in
/// second s' is written into second s' + L like any other. When it answers, the new slice replaces
/// the current one, which ends as at the end of its lifetime (its unused part given back, what it
/// used moved to the second it ended in; its calls in flight still settle against it, and their
/// records leave its hold, not the new one's). It is given back at once instead when a budget
/// changed meanwhile, the instance is stopping (shutdown waits up to 5 s for it), or the user
/// stopped calling (the current slice's lifetime is over with no call since). Refused or failed
/// (logged at Debug), it changes nothing: the current slice goes on, and when it ends the next call
/// claims as usual. Calls the current slice no longer covers wait for it as for any claim in
/// flight: one limit of one user never has two claims in flight on one instance.</item>
/// <item><b>Failures.</b> A claim that cannot reach the database fails like an exact check (the fail
/// policy of the caller applies). An unreachable database also breaks the LISTEN connection, after
/// which every call is checked exactly (and so meets the fail policy) until it is back: the fail
/// policy is the same as with slices off, give or take the calls decided in the moment before the
/// connection's loss is seen (at most the 5 s between its pings when the network drops silently).</item>
/// </list>
/// </summary>
internal sealed class HeadroomSlices : IAsyncDisposable
{
    /// <summary>Calls' worth a user's first claim asks for.</summary>
    internal const long FirstCalls = 2;

    /// <summary>Most calls' worth a claim asks for.</summary>
    internal const long MaxCalls = 4_096;

    /// <summary>
    /// A slice starts the background claim of its part's next slice (<see cref="PreClaimAsync"/>)
    /// when a call it decides leaves it less than 1 / PreClaimShare of its lifetime (plus the
    /// user's longest pause between calls lately, at most half the lifetime in all: <see cref="Lead"/>),
    /// or fewer than 1 / PreClaimShare of its calls (so only slices of 8 calls or more, which a
    /// busy user reaches within four claims): an eighth of 10 s is 1.25 s, over ten times the
    /// slowest claim measured on a loaded box (100 ms); of a slice of 4,096 calls, 512. A user who
    /// calls without pauses has slices replaced an eighth before their end (about an eighth more
    /// claims); one who pauses, at most half-way (at most twice as many claims, none waited for).
    /// </summary>
    internal const int PreClaimShare = 8;

    /// <summary>The channel budget changes are announced on (the payload: schema, a new line, and the user id or nothing for the default budget).</summary>
    internal const string Channel = "tokenmeter_limits";

    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan ListenRetry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CarveRetention = TimeSpan.FromHours(1);
    private static readonly TimeSpan RetentionScanEvery = TimeSpan.FromMinutes(1);

    private readonly PostgresStoreContext _context;
    private readonly CheckBatcher _batcher;
    private readonly TimeProvider _time;
    private readonly long _slotOffset;
    private readonly TimeSpan _preClaimLead;
    private readonly TimeSpan _maxLead;
    private readonly Lock _gate = new();
    private readonly Dictionary<PartKey, Part> _parts = [];
    private readonly ConcurrentDictionary<Guid, Carve> _carved = new();
    private readonly List<SliceAdjust> _outbox = [];
    private readonly HashSet<Plan> _preClaiming = [];
    private readonly CancellationTokenSource _stopping = new();
    private long _generation;
    private long _claims;
    private long _preClaims;
    private long _waits;
    private bool _closing;
    private DateTimeOffset _nextRetentionScan;
    private volatile bool _live;
    private volatile bool _disposed;
    private int _started;
    private Task? _loop;

    public HeadroomSlices(PostgresStoreContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _context = context;
        _batcher = PostgresSharedLimits.Batcher(context);
        _time = context.TimeProvider;
        Enabled = context.Options.LocalSlices;
        Lifetime = context.Options.SliceLifetime;
        _slotOffset = (long)Math.Ceiling(Lifetime.TotalSeconds);
        _preClaimLead = Lifetime / PreClaimShare;
        _maxLead = Lifetime / 2;
    }

    /// <summary>Whether slices are used (<see cref="PostgresStoreOptions.LocalSlices"/>); off: every check is exact.</summary>
    public bool Enabled { get; }

    /// <summary>How long a slice decides calls.</summary>
    public TimeSpan Lifetime { get; }

    /// <summary>Whether slices decide calls now (on, and listening for limit changes).</summary>
    internal bool IsLive => _live;

    /// <summary>Claims made on a call's path (the call waited for them; tests and measurements).</summary>
    internal long Claims => Interlocked.Read(ref _claims);

    /// <summary>Background claims of a next slice started (<see cref="PreClaimAsync"/>; tests and measurements).</summary>
    internal long PreClaims => Interlocked.Read(ref _preClaims);

    /// <summary>Calls not decided at once: each waited for a claim, its own or another call's (tests and measurements).</summary>
    internal long Waits => Interlocked.Read(ref _waits);

    /// <summary>Completes when the background claims in flight now have ended (tests; shutdown).</summary>
    internal Task PreClaimsEnded()
    {
        lock (_gate)
        {
            return Task.WhenAll(_preClaiming.Select(p => p.Done.Task));
        }
    }

    /// <summary>Slices open now (tests).</summary>
    internal int OpenSlices
    {
        get
        {
            lock (_gate)
            {
                return _parts.Values.Count(p => p.Slice is { Closed: false });
            }
        }
    }

    /// <summary>
    /// Checks a call: from this instance's slices when they cover it (completes at once, nothing
    /// allocated but the decision), else by claiming new slices in one round trip.
    /// </summary>
    public ValueTask<LimitCheckResult> CheckAsync(LimitCheck check, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(check);
        if (!Enabled)
        {
            return new(_batcher.CheckAsync(check, cancellationToken));
        }

        Start();
        if (!_live)
        {
            return new(_batcher.CheckAsync(check, cancellationToken));
        }

        if (TryDecide(check, out var decided, out var wait, out var plan, out var next))
        {
            PreClaim(check, next);
            return new(decided!);
        }

        Interlocked.Increment(ref _waits);
        return new(ClaimOrWaitAsync(check, wait, plan, cancellationToken));
    }

    /// <summary>The slow path of <see cref="CheckAsync"/>: claims the slices planned, or waits for another call's claim of them and checks again.</summary>
    private async Task<LimitCheckResult> ClaimOrWaitAsync(LimitCheck check, Task? wait, Plan? plan, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (plan is not null)
            {
                return await ClaimAsync(check, plan, cancellationToken).ConfigureAwait(false);
            }

            // Another call of this instance, or a background claim, is claiming the same slice: decide from what it brings.
            await wait!.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (TryDecide(check, out var decided, out wait, out plan, out var next))
            {
                PreClaim(check, next);
                return decided!;
            }
        }
    }

    /// <summary>
    /// Decides the call from the slices when they cover it (true), with the background claim of the
    /// next slices to start when it leaves them close to their end; otherwise the claim in flight to
    /// wait for, or the claim to make (planned under the gate).
    /// </summary>
    private bool TryDecide(LimitCheck check, out LimitCheckResult? decided, out Task? wait, out Plan? plan, out Plan? next)
    {
        decided = null;
        wait = null;
        plan = null;
        next = null;
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            var tokens = check.Tokens is { } t ? PartFor(new PartKey(SliceKind.Tokens, t.Key, default), now) : null;
            var requests = check.Requests is { } r ? PartFor(new PartKey(SliceKind.Requests, r.Key, default), now) : null;
            var budget = check.Budget is { } b ? PartFor(new PartKey(SliceKind.Budget, b.UserId, b.Month), now) : null;
            var tokensFit = tokens is null || Fits(tokens.Slice, check.Tokens!, now);
            var requestsFit = requests is null || Fits(requests.Slice, check.Requests!, now);
            var budgetFit = budget is null || Fits(budget.Slice, check.Budget!, now);
            if (tokensFit && requestsFit && budgetFit)
            {
                decided = Decide(check, tokens?.Slice, requests?.Slice, budget?.Slice, now);
                next = PrepareNext(tokens, requests, budget, now);
                return true;
            }

            wait = ((tokensFit ? null : tokens?.Claiming) ?? (requestsFit ? null : requests?.Claiming) ?? (budgetFit ? null : budget?.Claiming))?.Task;
            if (wait is null)
            {
                plan = Prepare(check, tokensFit ? null : tokens, requestsFit ? null : requests, budgetFit ? null : budget, now);
            }

            return false;
        }
    }

    /// <summary>
    /// Settles: a call decided from a slice settles against it in-process (tokens while the slice
    /// lasts; a budget call gives back what it did not use, and its records leave the slice's hold in
    /// the transaction that stores them, see <see cref="SliceLandings"/>), the rest as exact holds and
    /// entries in one round trip.
    /// </summary>
    public ValueTask SettleAsync(IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(holds);
        ArgumentNullException.ThrowIfNull(entries);
        var landings = _context.Landings;
        if (_carved.IsEmpty)
        {
            foreach (var hold in holds)
            {
                landings.Forget(hold.Records);
            }

            return PostgresSharedLimits.SettleAsync(_context, holds, entries, cancellationToken);
        }

        // Lists only for what a batch holds (most batches hold local settles alone).
        List<HoldSettle>? exactHolds = null;
        List<EntrySettle>? exactEntries = null;
        List<CarvedSettle>? carved = null;
        List<(HoldSettle Hold, Carve Carve, decimal StoredCost, long StoredTokens)>? local = null;
        for (var i = 0; i < holds.Count; i++)
        {
            var hold = holds[i];
            if (!_carved.TryRemove(hold.Id, out var carve))
            {
                landings.Forget(hold.Records);
                (exactHolds ??= []).Add(hold);
                continue;
            }

            var slice = carve.Slice;
            if (!_disposed && slice.Target is { } target && landings.TryAssign(hold.Records, target, out var storedCost, out var storedTokens))
            {
                (local ??= []).Add((hold, carve, storedCost, storedTokens));
            }
            else
            {
                // A record not followed from the start (or the app is stopping): the call becomes its own hold.
                landings.Forget(hold.Records);
                (carved ??= []).Add(new CarvedSettle(hold, slice.HoldId, slice.Key, slice.Month, carve.CostUsd, carve.Amount));
            }
        }

        lock (_gate)
        {
            for (var i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                if (!_carved.TryRemove(entry.Id, out var carve))
                {
                    (exactEntries ??= []).Add(entry);
                    continue;
                }

                var slice = carve.Slice;
                if (!slice.Closed)
                {
                    // What the call did not use goes back into the slice (what it used over its estimate comes out of it).
                    slice.Remaining += carve.Amount - entry.Amount;
                }
                else if (entry.Amount != carve.Amount)
                {
                    // The slice has ended: its estimate was moved to the second it ended in; correct it there.
                    _outbox.Add(new SliceAdjust(slice.Key, null, slice.EndSlot, 0m, entry.Amount - carve.Amount));
                }
            }

            foreach (var (hold, carve, storedCost, storedTokens) in local ?? [])
            {
                SettleLocally(carve.Slice, carve.CostUsd - hold.CostUsd, carve.Amount - hold.Tokens);
                if (storedCost != 0m || storedTokens != 0)
                {
                    // Stored before the call ended: the rollups count them, the slice's hold no longer does.
                    _outbox.Add(new SliceAdjust(carve.Slice.Key, carve.Slice.HoldId, 0, storedCost, storedTokens));
                }
            }

            FlushOutbox(send: false);
        }

        return exactHolds is null && exactEntries is null && carved is null
            ? ValueTask.CompletedTask
            : PostgresSharedLimits.SettleAsync(_context, (IReadOnlyList<HoldSettle>?)exactHolds ?? [], (IReadOnlyList<EntrySettle>?)exactEntries ?? [], (IReadOnlyList<CarvedSettle>?)carved ?? [], cancellationToken);
    }

    /// <summary>Follows a record attached to a call's hold until it is stored (while slices decide calls).</summary>
    public void Watch(UsageRecord record)
    {
        if (_live)
        {
            _context.Landings.Watch(record, _time.GetUtcNow());
        }
    }

    /// <summary>
    /// A budget call decided from <paramref name="slice"/> ended (under the gate): what it did not use
    /// of its estimate goes back into the slice, or, the slice having ended, back from its hold; its
    /// real cost stays in the hold until its records are stored. A call that used more than its
    /// estimate grows the hold by what the slice lacks.
    /// </summary>
    private void SettleLocally(Slice slice, decimal backCost, long backTokens)
    {
        if (slice.Closed)
        {
            if (backCost != 0m || backTokens != 0)
            {
                _outbox.Add(new SliceAdjust(slice.Key, slice.HoldId, 0, backCost, backTokens));
            }

            return;
        }

        slice.RemainingCostUsd += backCost;
        slice.Remaining += backTokens;
        var lackCost = Math.Min(0m, slice.RemainingCostUsd);
        var lackTokens = Math.Min(0, slice.Remaining);
        if (lackCost != 0m || lackTokens != 0)
        {
            _outbox.Add(new SliceAdjust(slice.Key, slice.HoldId, 0, lackCost, lackTokens));
            slice.RemainingCostUsd -= lackCost;
            slice.Remaining -= lackTokens;
        }
    }

    /// <summary>Drops the budget slices of a user (null: of every user) and gives their unused part back: a budget changed.</summary>
    /// <param name="userId">The user whose budget changed, or null for the default budget.</param>
    public void Drop(string? userId)
    {
        lock (_gate)
        {
            _generation++;
            var now = _time.GetUtcNow();
            foreach (var part in _parts.Values)
            {
                if (part.Slice is { Kind: SliceKind.Budget, Closed: false } slice && (userId is null || slice.Key == userId))
                {
                    Close(part, now);
                }
            }

            FlushOutbox(send: true);
        }
    }

    /// <summary>Ends the slices whose lifetime is over (giving their unused part back) and forgets idle users; runs every 200 ms.</summary>
    internal void Sweep()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            List<PartKey>? idle = null;
            foreach (var (key, part) in _parts)
            {
                if (part.Slice is { Closed: false } slice && now >= slice.Until)
                {
                    Close(part, now);
                }

                if (part.Claiming is null && part.Slice is null or { Closed: true } && now - part.LastUsed > Lifetime + Lifetime)
                {
                    (idle ??= []).Add(key);
                }
            }

            foreach (var key in idle ?? [])
            {
                _parts.Remove(key);
            }

            _context.Landings.TakeLate(_outbox);
            FlushOutbox(send: true);
        }

        // Forgetting what is an hour old needs no scan of every followed record and call every 200 ms
        // (at 20,000 calls a second that was ~1 % of the process's CPU): once a minute is enough.
        var scanAt = _time.GetUtcNow();
        if (scanAt < _nextRetentionScan)
        {
            return;
        }

        _nextRetentionScan = scanAt + RetentionScanEvery;
        var old = scanAt - CarveRetention;
        _context.Landings.Sweep(old);
        foreach (var (id, carve) in _carved)
        {
            if (carve.At < old)
            {
                _carved.TryRemove(id, out _);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }

        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        // Background claims in flight end first (no new one starts): what they bring is given back with the slices below.
        lock (_gate)
        {
            _closing = true;
        }

        var preClaims = PreClaimsEnded();
        if (!preClaims.IsCompleted)
        {
            try
            {
                await preClaims.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Their slices lapse with their lease and window (counted meanwhile, never past a limit).
            }
        }

        // Every slice ends; what is unused goes back before the store closes (settles still queued
        // make their calls their own holds and take their estimates from the slices' holds afterwards).
        List<SliceAdjust> last;
        lock (_gate)
        {
            _live = false;
            _disposed = true;
            _context.Landings.TakeLate(_outbox);
            var now = _time.GetUtcNow();
            foreach (var part in _parts.Values)
            {
                if (part.Slice is { Closed: false })
                {
                    Close(part, now);
                }
            }

            last = [.. _outbox, .. _batcher.TakeAdjustments()];
            _outbox.Clear();
        }

        if (last.Count > 0)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await PostgresSharedLimits.AdjustAsync(_context, last, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.SliceAdjustmentsLost(_context.Logger, ex, last.Count);
            }
        }

        _stopping.Dispose();
    }

    private static long SlotOf(DateTimeOffset instant)
    {
        var ms = instant.ToUnixTimeMilliseconds();
        return Math.DivRem(ms, 1000, out var rem) - (rem < 0 ? 1 : 0);
    }

    private static bool Fits(Slice? slice, RateLimitRequest request, DateTimeOffset now) =>
        slice is { Closed: false } s && now < s.Until && s.Limit == request.Limit && s.Remaining >= (request.MustFit ? 1 : request.Amount);

    private static bool Fits(Slice? slice, BudgetHoldRequest request, DateTimeOffset now) =>
        slice is { Closed: false } s && now < s.Until
        && (s.Unlimited || (s.RemainingCostUsd >= request.Estimate.CostUsd && s.Remaining >= request.Estimate.Tokens));

    private void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _loop = Task.WhenAll(Task.Run(SweepLoopAsync), Task.Run(ListenAsync));
        }
    }

    private Part PartFor(PartKey key, DateTimeOffset now)
    {
        if (!_parts.TryGetValue(key, out var part))
        {
            part = new Part { LastUsed = now, PauseSeen = now };
            _parts[key] = part;
        }

        // The longest pause between two calls lately: a longer one, or any once it is two lifetimes old.
        var pause = now - part.LastUsed;
        if (pause >= part.Pause || now - part.PauseSeen > Lifetime + Lifetime)
        {
            part.Pause = pause;
            part.PauseSeen = now;
        }

        part.LastUsed = now;
        return part;
    }

    /// <summary>Takes the call from slices that cover it (under the gate).</summary>
    private LimitCheckResult Decide(LimitCheck check, Slice? tokens, Slice? requests, Slice? budget, DateTimeOffset now)
    {
        RateLimitResult? rate = null;
        if (tokens is not null)
        {
            // The requests window's answer replaces this one when both are checked.
            rate = requests is null ? new RateLimitResult(true, tokens.UsedAtClaim + tokens.Claimed - tokens.Remaining, TimeSpan.Zero) : null;
            tokens.Remaining -= check.Tokens!.Amount;
            _carved[check.Tokens.Id] = new Carve(tokens, check.Tokens.Amount, 0m, now);
        }

        if (requests is not null)
        {
            rate = new RateLimitResult(true, requests.UsedAtClaim + requests.Claimed - requests.Remaining, TimeSpan.Zero);
            requests.Remaining--;
        }

        return new LimitCheckResult(null, rate, budget is null ? null : TakeBudget(budget, check.Budget!, now));
    }

    private BudgetHoldResult TakeBudget(Slice budget, BudgetHoldRequest request, DateTimeOffset now)
    {
        if (budget.Unlimited)
        {
            return new BudgetHoldResult(true, null, 0m, 0, 0m, 0);
        }

        var result = new BudgetHoldResult(true, budget.BudgetLimit, budget.SpentCostUsd, budget.SpentTokens, budget.HeldCostUsd + budget.TakenCostUsd, budget.HeldTokens + budget.TakenTokens);
        budget.RemainingCostUsd -= request.Estimate.CostUsd;
        budget.Remaining -= request.Estimate.Tokens;
        budget.TakenCostUsd += request.Estimate.CostUsd;
        budget.TakenTokens += request.Estimate.Tokens;
        _carved[request.Id] = new Carve(budget, request.Estimate.Tokens, request.Estimate.CostUsd, now);
        return result;
    }

    /// <summary>Plans a claim of the parts the slices do not cover (under the gate): ends their slices, and takes the covered parts from theirs.</summary>
    private Plan Prepare(LimitCheck check, Part? tokens, Part? requests, Part? budget, DateTimeOffset now)
    {
        var plan = new Plan(_generation, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var want = 0L;
        foreach (var part in new[] { tokens, requests, budget })
        {
            if (part is null)
            {
                continue;
            }

            if (part.Slice is { Closed: false })
            {
                Close(part, now);
            }

            part.Claiming = plan.Done;
            want = Math.Max(want, part.Want);
        }

        plan.Calls = want;

        // The covered parts come from their slices now, and go back there if the claim is refused.
        if (tokens is null && check.Tokens is { } t && _parts.TryGetValue(new PartKey(SliceKind.Tokens, t.Key, default), out var tp))
        {
            plan.LocalTokens = tp.Slice;
            tp.Slice!.Remaining -= t.Amount;
        }

        if (requests is null && check.Requests is { } r && _parts.TryGetValue(new PartKey(SliceKind.Requests, r.Key, default), out var rp))
        {
            plan.LocalRequests = rp.Slice;
            rp.Slice!.Remaining--;
        }

        if (budget is null && check.Budget is { } b && _parts.TryGetValue(new PartKey(SliceKind.Budget, b.UserId, b.Month), out var bp) && !bp.Slice!.Unlimited)
        {
            plan.LocalBudget = bp.Slice;
            bp.Slice.RemainingCostUsd -= b.Estimate.CostUsd;
            bp.Slice.Remaining -= b.Estimate.Tokens;
        }
        else if (budget is null && check.Budget is not null)
        {
            plan.LocalUnlimited = true;
        }

        plan.Tokens = tokens;
        plan.Requests = requests;
        plan.Budget = budget;

        // Returns of the slices just ended ride in the claim's round trip, before it.
        FlushOutbox(send: false);
        return plan;
    }

    /// <summary>
    /// Plans the background claim of the next slice of each part whose slice the call just decided
    /// left close to its end (under the gate, see <see cref="Ending"/>), sized as a claim made now
    /// would be; null when there is none (or the instance is stopping).
    /// </summary>
    private Plan? PrepareNext(Part? tokens, Part? requests, Part? budget, DateTimeOffset now)
    {
        if (_closing || !(Ending(tokens, now) || Ending(requests, now) || Ending(budget, now)))
        {
            return null;
        }

        var plan = new Plan(_generation, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        plan.Tokens = Take(tokens);
        plan.Requests = Take(requests);
        plan.Budget = Take(budget);
        _preClaiming.Add(plan);
        return plan;

        Part? Take(Part? part)
        {
            if (!Ending(part, now))
            {
                return null;
            }

            // Calls the slice no longer covers wait for this claim, as for any claim in flight.
            part!.Claiming = plan.Done;

            // As the claim after the slice's end would ask: half as much if the slice is mostly unused.
            plan.Calls = Math.Max(plan.Calls, MostlyUnused(part.Slice!) ? Math.Max(FirstCalls, part.Want / 2) : part.Want);
            return part;
        }
    }

    /// <summary>
    /// Whether a part's open slice, with no claim of the part in flight, is close to its end: less
    /// than 1 / <see cref="PreClaimShare"/> of its lifetime or of its calls left.
    /// </summary>
    private bool Ending(Part? part, DateTimeOffset now) =>
        part is { Claiming: null, Slice: { Closed: false } slice }
        && (slice.Until - now < Lead(part) || slice.Remaining < slice.Low || slice.RemainingCostUsd < slice.LowCostUsd);

    /// <summary>
    /// How long before a slice's end a call starts the claim of the next: 1 / <see cref="PreClaimShare"/>
    /// of the lifetime, plus the longest pause between the user's calls lately (so a user who pauses
    /// that long finds the next slice when calling again), at most half the lifetime.
    /// </summary>
    private TimeSpan Lead(Part part) => part.Pause < _maxLead - _preClaimLead ? part.Pause + _preClaimLead : _maxLead;

    /// <summary>
    /// The claim of a plan's parts as one check: <paramref name="check"/>'s limits of those parts, and
    /// for a budget slice a hold of its own that lapses a lifetime after the call's lease (for a call
    /// started at the slice's end).
    /// </summary>
    private (SliceClaim Claim, BudgetHoldRequest? Hold) ClaimOf(LimitCheck check, Plan plan)
    {
        BudgetHoldRequest? hold = null;
        if (plan.Budget is not null)
        {
            var b = check.Budget!;
            hold = b with { Id = UsageIds.NewVersion7(b.Now), ExpiresAt = b.ExpiresAt + Lifetime };
        }

        var claim = new LimitCheck(plan.Tokens is null ? null : check.Tokens, plan.Requests is null ? null : check.Requests, hold);
        return (new SliceClaim(claim, new SliceWant(plan.Calls, _slotOffset)), hold);
    }

    private async Task<LimitCheckResult> ClaimAsync(LimitCheck check, Plan plan, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _claims);
        var (claim, hold) = ClaimOf(check, plan);
        CheckAnswer answer;
        try
        {
            answer = await _batcher.ClaimAsync(claim, CancellationToken.None).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate)
            {
                Restore(check, plan, requestsToo: true);
                EndClaim(plan);
            }

            throw;
        }

        lock (_gate)
        {
            try
            {
                return Apply(check, plan, hold, answer);
            }
            finally
            {
                EndClaim(plan);
            }
        }
    }

    /// <summary>Starts the background claim <see cref="TryDecide"/> planned, if any (outside the gate).</summary>
    private void PreClaim(LimitCheck check, Plan? next)
    {
        if (next is not null)
        {
            _ = PreClaimAsync(check, next);
        }
    }

    /// <summary>
    /// Claims the next slices of a busy user's parts in the background while their current slices
    /// keep deciding calls: the same statement as any claim, for a first call the size of the call
    /// that started it (that call was decided from the current slices, so the new slices keep all
    /// they are granted), decided against every hold in force (the current slices' included: both
    /// count while they overlap, so no limit is passed) and granted as any claim is. What it brings
    /// replaces the current slices (<see cref="Install"/>). Refused or failed, it changes nothing
    /// (a failure is logged at Debug): the current slices go on, and once they end the next call
    /// claims as usual.
    /// </summary>
    private async Task PreClaimAsync(LimitCheck check, Plan plan)
    {
        Interlocked.Increment(ref _preClaims);
        var (claim, hold) = ClaimOf(check, plan);
        CheckAnswer? answer = null;
        try
        {
            answer = await _batcher.ClaimAsync(claim, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.PreClaimFailed(_context.Logger, ex);
        }

        lock (_gate)
        {
            try
            {
                if (answer is not null)
                {
                    Install(check, plan, hold, answer);
                }
            }
            finally
            {
                _preClaiming.Remove(plan);
                EndClaim(plan);
            }
        }
    }

    /// <summary>
    /// Turns a background claim's answer into its parts' next slices (under the gate, see
    /// <see cref="Replace"/>). Refused, it changes nothing: the database kept nothing of it but, when
    /// the budget refused it, the requests window's slice, which is given back at once.
    /// </summary>
    private void Install(LimitCheck check, Plan plan, BudgetHoldRequest? hold, CheckAnswer answer)
    {
        var result = answer.Result;
        if (result.RefusedBy is not null)
        {
            return;
        }

        var now = _time.GetUtcNow();
        var grant = answer.Grant;
        var keep = plan.Generation == _generation && !_closing;
        var budgetAllowed = result.Budget is null or { Allowed: true };
        if (plan.Requests is { } requests)
        {
            Replace(requests, RateSlice(SliceKind.Requests, check.Requests!, grant.RequestsCalls, 1, grant, result.Rate?.Used ?? 0, now), grant.RequestsCalls, keep && budgetAllowed, now);
        }

        if (budgetAllowed && plan.Tokens is { } tokens)
        {
            var t = check.Tokens!;
            Replace(tokens, RateSlice(SliceKind.Tokens, t, grant.TokensCalls, t.Amount, grant, result.Rate?.Used ?? 0, now), grant.TokensCalls, keep, now);
        }

        if (budgetAllowed && plan.Budget is { } budget)
        {
            Replace(budget, BudgetSlice(check.Budget!, hold!, result.Budget!, grant.BudgetCalls), grant.BudgetCalls, keep, now);
        }

        if (!_closing)
        {
            FlushOutbox(send: true);
        }
    }

    /// <summary>
    /// Installs a slice claimed in the background as its part's (under the gate), ending the slice
    /// it replaces as at the end of its lifetime (its unused part given back, its calls in flight
    /// settling against it); or gives it back at once when <paramref name="keep"/> is false (a
    /// budget changed while it was claimed, or the instance is stopping) or the user stopped calling
    /// (the current slice's lifetime is over and no call came since).
    /// </summary>
    private void Replace(Part part, Slice next, long granted, bool keep, DateTimeOffset now)
    {
        var current = part.Slice!;
        if (keep && (now < current.Until || part.LastUsed >= current.Until))
        {
            if (!current.Closed)
            {
                Close(part, now);
            }

            part.Slice = next;
            Grow(part, granted);
        }
        else
        {
            End(next, now);
        }
    }

    /// <summary>Turns a claim's answer into slices and the call's decision (under the gate).</summary>
    private LimitCheckResult Apply(LimitCheck check, Plan plan, BudgetHoldRequest? hold, CheckAnswer answer)
    {
        var now = _time.GetUtcNow();
        var result = answer.Result;
        var grant = answer.Grant;
        var stale = plan.Generation != _generation;
        if (result.RefusedBy is not null)
        {
            // Refused by a window: the database kept nothing of the claim.
            Restore(check, plan, requestsToo: true);
            return result;
        }

        if (plan.Requests is { } requestsPart)
        {
            // Taken whether or not the budget lets the call through (the request was made).
            var r = check.Requests!;
            requestsPart.Slice = RateSlice(SliceKind.Requests, r, grant.RequestsCalls, 1, grant, result.Rate?.Used ?? 0, now);
            requestsPart.Slice.Remaining--;
            Grow(requestsPart, grant.RequestsCalls);
        }

        if (result.Budget is { Allowed: false })
        {
            Restore(check, plan, requestsToo: false);
            return result;
        }

        RateLimitResult? rate = result.Rate;
        if (plan.Tokens is { } tokensPart)
        {
            var t = check.Tokens!;
            tokensPart.Slice = RateSlice(SliceKind.Tokens, t, grant.TokensCalls, t.Amount, grant, result.Rate?.Used ?? 0, now);
            tokensPart.Slice.Remaining -= t.Amount;
            _carved[t.Id] = new Carve(tokensPart.Slice, t.Amount, 0m, now);
            Grow(tokensPart, grant.TokensCalls);
        }
        else if (plan.LocalTokens is { } localTokens)
        {
            _carved[check.Tokens!.Id] = new Carve(localTokens, check.Tokens.Amount, 0m, now);
            rate ??= new RateLimitResult(true, localTokens.UsedAtClaim + localTokens.Claimed - localTokens.Remaining, TimeSpan.Zero);
        }

        if (plan.LocalRequests is { } localRequests)
        {
            rate ??= new RateLimitResult(true, localRequests.UsedAtClaim + localRequests.Claimed - localRequests.Remaining, TimeSpan.Zero);
        }

        var budgetResult = result.Budget;
        if (plan.Budget is { } budgetPart)
        {
            var b = check.Budget!;
            var slice = BudgetSlice(b, hold!, result.Budget!, grant.BudgetCalls);
            budgetPart.Slice = slice;
            if (!slice.Unlimited)
            {
                TakeBudget(slice, b, now);
            }

            Grow(budgetPart, grant.BudgetCalls);
        }
        else if (plan.LocalBudget is { } localBudget)
        {
            budgetResult = new BudgetHoldResult(true, localBudget.BudgetLimit, localBudget.SpentCostUsd, localBudget.SpentTokens, localBudget.HeldCostUsd + localBudget.TakenCostUsd, localBudget.HeldTokens + localBudget.TakenTokens);
            localBudget.TakenCostUsd += check.Budget!.Estimate.CostUsd;
            localBudget.TakenTokens += check.Budget.Estimate.Tokens;
            _carved[check.Budget.Id] = new Carve(localBudget, check.Budget.Estimate.Tokens, check.Budget.Estimate.CostUsd, now);
        }
        else if (plan.LocalUnlimited)
        {
            budgetResult = new BudgetHoldResult(true, null, 0m, 0, 0m, 0);
        }

        if (stale)
        {
            // A limit changed while the claim was in flight: it decides its own call, its slices go back at once.
            foreach (var part in new[] { plan.Tokens, plan.Requests, plan.Budget })
            {
                if (part?.Slice is { Closed: false })
                {
                    Close(part, now);
                }
            }

            FlushOutbox(send: true);
        }

        return new LimitCheckResult(null, rate, budgetResult);
    }

    /// <summary>
    /// A budget slice of <paramref name="calls"/> calls' worth of <paramref name="b"/>'s estimate in
    /// the hold <paramref name="hold"/> a claim wrote: it decides calls for a lifetime from the
    /// claim's own clock reading, its hold covering each a whole lease.
    /// </summary>
    private Slice BudgetSlice(BudgetHoldRequest b, BudgetHoldRequest hold, BudgetHoldResult answer, long calls) => new(SliceKind.Budget, b.UserId, b.Now + Lifetime)
    {
        HoldId = hold.Id,
        Target = new SliceTarget(hold.Id, UsageIds.NewVersion7(b.Now), b.UserId, b.Month, hold.ExpiresAt),
        Month = b.Month,
        BudgetLimit = answer.Limit,
        Unlimited = answer.Limit is null,
        SpentCostUsd = answer.SpentCostUsd,
        SpentTokens = answer.SpentTokens,
        HeldCostUsd = answer.ReservedCostUsd,
        HeldTokens = answer.ReservedTokens,
        RemainingCostUsd = b.Estimate.CostUsd * calls,
        Remaining = b.Estimate.Tokens * calls,
        Claimed = calls,
        LowCostUsd = b.Estimate.CostUsd * (calls / PreClaimShare),
        Low = b.Estimate.Tokens * (calls / PreClaimShare),
    };

    /// <summary>
    /// A rate slice counted in second <c>slot</c> decides calls only before second <c>slot + 1</c>
    /// begins: its counter counts until <c>slot + 61 s</c>, so every use stays counted for a whole
    /// window after it (a slice of one call, counted in the second it was claimed in, ends then).
    /// </summary>
    private Slice RateSlice(SliceKind kind, RateLimitRequest request, long calls, long perCall, SliceGrant grant, long usedBefore, DateTimeOffset now)
    {
        var slot = calls > 1 ? grant.Slot + _slotOffset : grant.Slot;
        var until = DateTimeOffset.FromUnixTimeSeconds(slot + 1);
        return new(kind, request.Key, until < now + Lifetime ? until : now + Lifetime)
        {
            Limit = request.Limit,
            Claimed = calls * perCall,
            Remaining = calls * perCall,
            Low = calls / PreClaimShare * perCall,
            Slot = slot,
            UsedAtClaim = usedBefore,
        };
    }

    /// <summary>A user who used up a slice asks for twice as much next time.</summary>
    private static void Grow(Part part, long granted)
    {
        if (granted >= part.Want)
        {
            part.Want = Math.Min(MaxCalls, part.Want * 2);
        }
    }

    /// <summary>Puts back what a refused call took from slices that covered it (under the gate).</summary>
    private static void Restore(LimitCheck check, Plan plan, bool requestsToo)
    {
        if (plan.LocalTokens is { Closed: false } tokens)
        {
            tokens.Remaining += check.Tokens!.Amount;
        }

        if (requestsToo && plan.LocalRequests is { Closed: false } requests)
        {
            requests.Remaining++;
        }

        if (plan.LocalBudget is { Closed: false } budget)
        {
            budget.RemainingCostUsd += check.Budget!.Estimate.CostUsd;
            budget.Remaining += check.Budget.Estimate.Tokens;
        }

        // A slice that ended meanwhile gave back what it had then: what is put back here stays counted (a worst case).
    }

    private static void EndClaim(Plan plan)
    {
        foreach (var part in new[] { plan.Tokens, plan.Requests, plan.Budget })
        {
            if (part is not null && ReferenceEquals(part.Claiming, plan.Done))
            {
                part.Claiming = null;
            }
        }

        plan.Done.TrySetResult();
    }

    /// <summary>Ends a part's slice (under the gate, see <see cref="End"/>); one that ends mostly unused halves the part's next claim.</summary>
    private void Close(Part part, DateTimeOffset now)
    {
        var slice = part.Slice!;
        End(slice, now);
        if (MostlyUnused(slice))
        {
            part.Want = Math.Max(FirstCalls, part.Want / 2);
        }
    }

    /// <summary>Whether more than half of a slice is unused (of a budget slice: more than its calls took).</summary>
    private static bool MostlyUnused(Slice slice) =>
        slice.Kind == SliceKind.Budget ? slice.RemainingCostUsd > slice.TakenCostUsd : slice.Remaining * 2 > slice.Claimed;

    /// <summary>Ends a slice (under the gate): queues giving back what it did not use, and moving what it used to the second it ended in.</summary>
    private void End(Slice slice, DateTimeOffset now)
    {
        slice.Closed = true;
        if (slice.Kind == SliceKind.Budget)
        {
            if (!slice.Unlimited && (slice.RemainingCostUsd > 0 || slice.Remaining > 0))
            {
                _outbox.Add(new SliceAdjust(slice.Key, slice.HoldId, 0, Math.Max(0m, slice.RemainingCostUsd), Math.Max(0, slice.Remaining)));
            }

            return;
        }

        var end = SlotOf(now);
        if (slice.Slot > end)
        {
            // Written into the slice's last second: move what was used to now, give the rest back.
            slice.EndSlot = end;
            _outbox.Add(new SliceAdjust(slice.Key, null, slice.Slot, 0m, -slice.Claimed));
            if (slice.Claimed - slice.Remaining != 0)
            {
                _outbox.Add(new SliceAdjust(slice.Key, null, end, 0m, slice.Claimed - slice.Remaining));
            }
        }
        else
        {
            slice.EndSlot = slice.Slot;
            if (slice.Remaining != 0)
            {
                _outbox.Add(new SliceAdjust(slice.Key, null, slice.Slot, 0m, -slice.Remaining));
            }
        }
    }

    private void FlushOutbox(bool send)
    {
        if (_outbox.Count > 0)
        {
            _batcher.Adjust(_outbox, send);
            _outbox.Clear();
        }
        else if (send && _batcher.HasAdjustments)
        {
            _batcher.Adjust([], send: true);
        }
    }

    private async Task SweepLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Tick, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Sweep();
        }
    }

    /// <summary>LISTENs for budget changes on a connection of its own; while it is not listening, slices are off.</summary>
    private async Task ListenAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var connection = await _context.OpenConnectionAsync(_stopping.Token).ConfigureAwait(false);
                await using (connection.ConfigureAwait(false))
                {
                    connection.Notification += (_, e) => OnNotification(e.Payload);
                    using (var listen = new NpgsqlCommand("LISTEN " + Channel, connection))
                    {
                        await listen.ExecuteNonQueryAsync(_stopping.Token).ConfigureAwait(false);
                    }

                    // Anything cached before listening may have missed a change.
                    Drop(null);
                    _live = true;
                    Log.LimitListenerReady(_context.Logger, Channel);
                    while (true)
                    {
                        if (!await connection.WaitAsync(TimeSpan.FromSeconds(5), _stopping.Token).ConfigureAwait(false))
                        {
                            using var ping = new NpgsqlCommand("SELECT 1", connection);
                            await ping.ExecuteScalarAsync(_stopping.Token).ConfigureAwait(false);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                var wasLive = _live;
                _live = false;
                Drop(null);
                if (wasLive)
                {
                    Log.LimitListenerLost(_context.Logger, ex, ListenRetry);
                }

                try
                {
                    await Task.Delay(ListenRetry, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void OnNotification(string payload)
    {
        var newline = payload.IndexOf('\n', StringComparison.Ordinal);
        if (newline < 0 || !payload.AsSpan(0, newline).SequenceEqual(_context.Schema))
        {
            return;
        }

        var user = payload[(newline + 1)..];
        Drop(user.Length == 0 ? null : user);
    }

    private enum SliceKind
    {
        Tokens,
        Requests,
        Budget,
    }

    /// <summary>A limit of one key: a window's key (the month unused), or a budget's user and month.</summary>
    private readonly record struct PartKey(SliceKind Kind, string Key, DateOnly Month);

    /// <summary>A limit's state for one key: its slice, how much the next claim asks for, and the claim in flight.</summary>
    private sealed class Part
    {
        public Slice? Slice { get; set; }

        public long Want { get; set; } = FirstCalls;

        public TaskCompletionSource? Claiming { get; set; }

        public DateTimeOffset LastUsed { get; set; }

        /// <summary>The longest pause between two calls seen within two lifetimes of <see cref="PauseSeen"/> (<see cref="Lead"/>).</summary>
        public TimeSpan Pause { get; set; }

        public DateTimeOffset PauseSeen { get; set; }
    }

    /// <summary>
    /// One slice. Rate: <see cref="Remaining"/> permits or tokens of <see cref="Claimed"/>, counted in
    /// <see cref="Slot"/>. Budget: <see cref="RemainingCostUsd"/> and <see cref="Remaining"/> tokens
    /// left in the hold <see cref="HoldId"/>, or <see cref="Unlimited"/> (no budget applies).
    /// </summary>
    private sealed class Slice(SliceKind kind, string key, DateTimeOffset until)
    {
        public SliceKind Kind => kind;

        /// <summary>The window's key, or the user of a budget slice.</summary>
        public string Key => key;

        public DateTimeOffset Until => until;

        public bool Closed { get; set; }

        public long Limit { get; init; }

        public long Claimed { get; init; }

        public long Remaining { get; set; }

        /// <summary>Below this much <see cref="Remaining"/> (of a budget slice: or <see cref="LowCostUsd"/>), the slice is close to its end (<see cref="PreClaimShare"/>).</summary>
        public long Low { get; init; }

        public long Slot { get; init; }

        /// <summary>The second an ended rate slice's use was moved to (late corrections go there).</summary>
        public long EndSlot { get; set; }

        public long UsedAtClaim { get; init; }

        public Guid HoldId { get; init; }

        /// <summary>A budget slice's hold as its calls' records see it (<see cref="SliceLandings"/>).</summary>
        public SliceTarget? Target { get; init; }

        public DateOnly Month { get; init; }

        public BudgetLimit? BudgetLimit { get; init; }

        public bool Unlimited { get; init; }

        public decimal RemainingCostUsd { get; set; }

        public decimal LowCostUsd { get; init; }

        public decimal SpentCostUsd { get; init; }

        public long SpentTokens { get; init; }

        public decimal HeldCostUsd { get; init; }

        public long HeldTokens { get; init; }

        public decimal TakenCostUsd { get; set; }

        public long TakenTokens { get; set; }
    }

    /// <summary>A call decided from a slice: its estimate (tokens, and cost for a budget slice), until it settles.</summary>
    private sealed record Carve(Slice Slice, long Amount, decimal CostUsd, DateTimeOffset At);

    /// <summary>A claim being made: the parts it claims, the covered parts taken from their slices, what it asks for.</summary>
    private sealed class Plan(long generation, TaskCompletionSource done)
    {
        public long Generation => generation;

        public TaskCompletionSource Done => done;

        public long Calls { get; set; }

        public Part? Tokens { get; set; }

        public Part? Requests { get; set; }

        public Part? Budget { get; set; }

        public Slice? LocalTokens { get; set; }

        public Slice? LocalRequests { get; set; }

        public Slice? LocalBudget { get; set; }

        public bool LocalUnlimited { get; set; }
    }
}
