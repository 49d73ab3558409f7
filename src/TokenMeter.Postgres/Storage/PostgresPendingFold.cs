using Npgsql;
using TokenMeter.Postgres.Diagnostics;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Folds the pending sums (<c>usage_pending</c>, migration 0008) into every rollup: in one
/// transaction, the rows are deleted from the pending table and their sums added to the rollups, so
/// a row is either still pending or folded, never both and never neither; a crash before the commit
/// leaves them pending. One fold at a time per schema, across every instance (a transaction-level
/// advisory lock taken with try: an instance that finds a fold running leaves the rows to it), so the
/// fold is the only writer of the rollups. Started in the background once this instance has stored
/// <see cref="PostgresStoreOptions.FoldEveryRecords"/> records since its last fold, and by the schema
/// installer every <see cref="PostgresStoreOptions.FoldInterval"/>.
/// </summary>
internal sealed class PostgresPendingFold(PostgresStoreContext context) : IAsyncDisposable
{
    /// <summary>
    /// Takes the schema's fold lock ($1: the schema name) if it is free, and turns <c>synchronous_commit</c> off for the
    /// fold's transaction only: a fold lost in a crash rolls back whole, its rows are pending again and every read stays
    /// exact, so it needs no durability of its own, and its commit need not wait for the flush of the WAL a large fold
    /// writes (the writers' commits still flush theirs).
    /// </summary>
    internal const string LockSql = "SELECT pg_try_advisory_xact_lock(hashtext('tokenmeter.fold.' || $1)) AND set_config('synchronous_commit', 'off', true) = 'off'";

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

    /// <summary>Folds every pending row committed so far.</summary>
    /// <param name="cancellationToken">Cancels the fold (its transaction rolls back: nothing is lost).</param>
    /// <returns>The number of pending rows folded, or null when another fold held the lock (it folds them).</returns>
    public async Task<long?> FoldAsync(CancellationToken cancellationToken = default)
    {
        var connection = await context.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);
        using (var lockCommand = new NpgsqlCommand(LockSql, connection, transaction) { CommandTimeout = context.CommandTimeout })
        {
            lockCommand.Parameters.Add(new NpgsqlParameter<string> { TypedValue = context.Schema });
            if (await lockCommand.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not true)
            {
                return null;
            }
        }

        long folded;
        using (var fold = new NpgsqlCommand(context.Sql.Fold, connection, transaction) { CommandTimeout = context.CommandTimeout })
        {
            folded = (long)(await fold.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return folded;
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
            // The rows stay pending (and counted by every query); the next fold takes them.
            Log.FoldFailed(context.Logger, context.Schema, ex);
        }
    }
}
