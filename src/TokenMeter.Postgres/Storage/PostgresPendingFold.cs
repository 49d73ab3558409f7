using Npgsql;
using TokenMeter.Postgres.Diagnostics;
using TokenMeter.Postgres.Schema;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Folds the unfolded batches (<c>usage_batches</c> and their raw rows, migration 0011) and the pending
/// sums (<c>usage_pending_sums</c>) into every rollup: in one transaction, the batch rows and the sums
/// are deleted and what they stood for added to the rollups, so a batch is either unfolded or folded,
/// never both and never neither; a crash before the commit leaves them unfolded. One fold at a time per
/// schema, across every instance (a transaction-level advisory lock taken with try: an instance that
/// finds a fold running leaves the rows to it), so the fold is the only writer of the rollups;
/// re-pricing and retention wait for the same lock. Started in the background once this instance has stored
/// <see cref="PostgresStoreOptions.FoldEveryRecords"/> records since its last fold, and by the schema
/// installer every <see cref="PostgresStoreOptions.FoldInterval"/>.
/// </summary>
internal sealed class PostgresPendingFold(PostgresStoreContext context) : IAsyncDisposable
{
    /// <summary>
    /// Takes the schema's fold lock ($1: the schema name) if it is free, and turns <c>synchronous_commit</c> off for the
    /// fold's transaction only: a fold lost in a crash rolls back whole, its rows are pending again and every read stays
    /// exact, so it needs no durability of its own, and its commit need not wait for the flush of the WAL a large fold
    /// writes (the writers' commits still flush theirs). JIT compilation is off for the transaction too: the fold reads the
    /// raw rows between bounds known only when it runs, so it is planned over every monthly partition, and with a few
    /// years of them the summed estimate crosses <c>jit_above_cost</c>; the server then compiled ~400 functions for every
    /// fold (~200 ms, measured at 47 partitions), more than the fold's own work. <see cref="FoldsEndpointTotal"/> is set for the
    /// transaction too.
    /// </summary>
    internal const string LockSql = $"SELECT pg_try_advisory_xact_lock({PostgresIdentifiers.FoldLockKey}) AND set_config('synchronous_commit', 'off', true) = 'off' AND set_config('jit', 'off', true) = 'off' AND {FoldsEndpointTotal}";

    /// <summary>Waits for the schema's fold lock ($1: the schema name), JIT off and <see cref="FoldsEndpointTotal"/> for the transaction as above; for re-pricing and retention, which must not run alongside a fold.</summary>
    internal const string WaitLockSql = $"SELECT set_config('jit', 'off', true) = 'off' AND {FoldsEndpointTotal} FROM pg_advisory_xact_lock({PostgresIdentifiers.FoldLockKey})";

    /// <summary>
    /// Tells the trigger of migration 0016 on <c>usage_endpoint_month</c> that this transaction's fold adds to
    /// <c>usage_endpoint_total</c> itself (its <c>et</c> upsert): the trigger carries only the other writes of the months (an
    /// older version's fold during an upgrade, a correction by hand) to the all-time rows. Transaction-local, like the others.
    /// </summary>
    private const string FoldsEndpointTotal = "set_config('tokenmeter.folds_endpoint_total', 'on', true) = 'on'";

    private readonly Lock gate = new();
    private long sinceFold;
    private Task running = Task.CompletedTask;
    private bool disposed;

    /// <summary>Counts records stored by this instance and starts a background fold when enough have been stored since the last one.</summary>
    public void Appended(int records)
    {
        if (Interlocked.Add(ref sinceFold, records) < context.Options.FoldEveryRecords)
        {
            return;
        }

        lock (gate)
        {
            if (disposed || !running.IsCompleted)
            {
                return;
            }

            Interlocked.Exchange(ref sinceFold, 0);
            running = Task.Run(RunInBackgroundAsync);
        }
    }

    /// <summary>Folds every batch and pending sum committed so far.</summary>
    /// <param name="cancellationToken">Cancels the fold (its transaction rolls back: nothing is lost).</param>
    /// <returns>The number of rows folded (raw records of unfolded batches and pending sums), or null when another fold held the lock (it folds them).</returns>
    public async Task<long?> FoldAsync(CancellationToken cancellationToken = default)
    {
        var connection = await context.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);
        if (!await LockAsync(connection, transaction, wait: false, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        var folded = await FoldLockedAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return folded;
    }

    /// <summary>Takes the schema's fold lock in <paramref name="transaction"/>: with try (and the fold's asynchronous commit), or waiting for it.</summary>
    /// <returns>Whether the lock is held.</returns>
    internal async Task<bool> LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, bool wait, CancellationToken cancellationToken)
    {
        using var lockCommand = new NpgsqlCommand(wait ? WaitLockSql : LockSql, connection, transaction) { CommandTimeout = wait ? 0 : context.CommandTimeout };
        lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = context.Schema });
        return await lockCommand.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
    }

    /// <summary>Folds in <paramref name="transaction"/>, which holds the fold lock (<see cref="LockAsync"/>).</summary>
    /// <returns>The number of rows folded.</returns>
    internal async Task<long> FoldLockedAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        using var fold = new NpgsqlCommand(context.Sql.Fold, connection, transaction) { CommandTimeout = context.CommandTimeout };
        return (long)(await fold.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Waits for the background fold in flight, if any.</summary>
    public Task WhenIdleAsync()
    {
        lock (gate)
        {
            return running;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task last;
        lock (gate)
        {
            disposed = true;
            last = running;
        }

        await last.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunInBackgroundAsync()
    {
        try
        {
            await FoldAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException or ObjectDisposedException)
        {
            // The batches and sums stay unfolded (and counted by every query); the next fold takes them.
            Log.FoldFailed(context.Logger, context.Schema, ex);
        }
    }
}
