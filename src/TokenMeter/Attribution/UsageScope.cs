
namespace TokenMeter.Attribution;

/// <summary>
/// An ambient attribution scope. Every OpenAI call made inside it — across <c>await</c>s and the
/// tasks it starts — is recorded with its user, endpoint, session, problem and tags, and added to
/// its <see cref="Totals"/> (and to those of every enclosing scope). Call sites do not change.
/// </summary>
/// <example>
/// <code>
/// using var scope = UsageScope.Begin(new UsageContext { UserId = "42", Endpoint = "/api/hint" });
/// var reply = await chatClient.CompleteChatAsync(messages);
/// Console.WriteLine(scope.Totals.Figures.CostUsd);
/// </code>
/// </example>
public sealed class UsageScope : IDisposable
{
    private const int PendingFoldThreshold = 64;

    private static readonly AsyncLocal<UsageScope?> CurrentScope = new();

    private readonly UsageScope? _parent;
    private readonly Lock _gate = new();

    // The totals, added up in place (a record is added on every call, read far less often); the
    // snapshot handed out is built when read after a change.
    private UsageFigures _figures;
    private int _unpricedCalls;
    private string? _model;
    private UsageTotals? _totals = UsageTotals.Empty;

    // Calls whose records are built off the caller's thread (see IPendingUsage): added to the
    // totals when these are read, or once the writer has built them.
    private List<IPendingUsage>? _pending;

    // The pending count at which the next add folds in the resolved calls: doubled past what a fold
    // had to keep (calls the writer has not taken yet), so adding stays O(1) amortized however far
    // behind the writer's batches are, instead of rescanning the unresolved calls on every add.
    // Usually the writer folds them first (FoldResolved after building a batch), so adds rarely do.
    private int _foldAt = PendingFoldThreshold;
    private bool _disposed;

    private UsageScope(UsageScope? parent, UsageContext context)
    {
        _parent = parent;
        Context = context;
    }

    /// <summary>The innermost open scope of the current async flow, or null.</summary>
    public static UsageScope? Current => CurrentScope.Value;

    /// <summary>The effective context: this scope's values over those of the enclosing scopes.</summary>
    public UsageContext Context { get; }

    /// <summary>What the calls made inside this scope (and its nested scopes) used so far.</summary>
    public UsageTotals Totals
    {
        get
        {
            lock (_gate)
            {
                if (_pending is { Count: > 0 } pending)
                {
                    foreach (var usage in pending)
                    {
                        if (usage.Resolve() is { } record)
                        {
                            AddLocked(record);
                        }
                    }

                    pending.Clear();
                    _foldAt = PendingFoldThreshold;
                }

                return _totals ??= new UsageTotals(_figures, _unpricedCalls, _model);
            }
        }
    }

    /// <summary>Opens a scope nested in the current one; dispose it to close it.</summary>
    /// <param name="context">Who and what the calls are for; null values inherit from the enclosing scope.</param>
    /// <returns>The open scope.</returns>
    public static UsageScope Begin(UsageContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parent = CurrentScope.Value;
        var scope = new UsageScope(parent, Merge(parent?.Context, context));
        CurrentScope.Value = scope;
        return scope;
    }

    /// <summary>Adds a finished call to this scope and every enclosing one.</summary>
    /// <param name="record">The priced record.</param>
    internal void Add(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        for (var scope = this; scope is not null; scope = scope._parent)
        {
            lock (scope._gate)
            {
                scope.AddLocked(record);
            }
        }
    }

    /// <summary>Adds a finished call whose record is not built yet to this scope and every enclosing one.</summary>
    /// <param name="usage">The call.</param>
    internal void AddPending(IPendingUsage usage)
    {
        for (var scope = this; scope is not null; scope = scope._parent)
        {
            lock (scope._gate)
            {
                var pending = scope._pending ??= [];

                // A scope that lives long and is never read must not hold every call: fold in the
                // ones the writer has already built (no building here, only adding).
                if (pending.Count >= scope._foldAt)
                {
                    scope.FoldResolved(pending);
                    scope._foldAt = Math.Max(PendingFoldThreshold, pending.Count * 2);
                }

                pending.Add(usage);
            }
        }
    }

    /// <summary>Calls added whose records are not in the totals yet.</summary>
    internal int PendingCount
    {
        get
        {
            lock (_gate)
            {
                return _pending?.Count ?? 0;
            }
        }
    }

    /// <summary>The enclosing scope, or null.</summary>
    internal UsageScope? Parent => _parent;

    /// <summary>
    /// Adds the pending calls of this scope whose records are built to its totals (not those of the
    /// enclosing scopes). The writer calls this after building a batch, while the records are still
    /// in its cache, so that the callers adding calls to a long-lived scope need not fold them.
    /// </summary>
    internal void FoldResolved()
    {
        lock (_gate)
        {
            if (_pending is { Count: > 0 } pending)
            {
                FoldResolved(pending);
            }
        }
    }

    /// <summary>Closes the scope: the enclosing scope becomes current again in this flow.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (ReferenceEquals(CurrentScope.Value, this))
        {
            CurrentScope.Value = _parent;
        }
    }

    private void FoldResolved(List<IPendingUsage> pending)
    {
        var kept = 0;
        for (var i = 0; i < pending.Count; i++)
        {
            var usage = pending[i];
            if (!usage.IsResolved)
            {
                pending[kept++] = usage;
            }
            else if (usage.Resolve() is { } record)
            {
                AddLocked(record);
            }
        }

        pending.RemoveRange(kept, pending.Count - kept);
    }

    // As UsageTotals.Add, without a new snapshot per record.
    private void AddLocked(UsageRecord record)
    {
        _figures += UsageFigures.Of(record);
        _unpricedCalls += record.CostUsd is null ? 1 : 0;
        _model = record.Model ?? record.RequestModel ?? _model;
        _totals = null;
    }

    private static UsageContext Merge(UsageContext? outer, UsageContext inner)
    {
        if (outer is null)
        {
            return inner;
        }

        IReadOnlyDictionary<string, string>? tags = outer.Tags;
        if (inner.Tags is { Count: > 0 })
        {
            if (outer.Tags is null or { Count: 0 })
            {
                tags = inner.Tags;
            }
            else
            {
                var merged = new Dictionary<string, string>(outer.Tags, StringComparer.Ordinal);
                foreach (var (key, value) in inner.Tags)
                {
                    merged[key] = value;
                }

                tags = merged;
            }
        }

        return new UsageContext
        {
            UserId = inner.UserId ?? outer.UserId,
            Endpoint = inner.Endpoint ?? outer.Endpoint,
            SessionId = inner.SessionId ?? outer.SessionId,
            ProblemId = inner.ProblemId ?? outer.ProblemId,
            Tags = tags,
        };
    }
}
