using Microsoft.Extensions.Hosting;
using Npgsql;
using TokenMeter.Postgres.Diagnostics;
using TokenMeter.Postgres.Schema;

namespace TokenMeter.Postgres.Storage;

/// <summary>
/// Installs the schema at start-up without holding the host up: start-up returns at once, the
/// install runs in the background and is retried until the database answers (one error is logged
/// for the outage, not one per attempt); a request that needs the schema before then waits for an
/// attempt of its own (<see cref="PostgresStoreContext.WhenReadyAsync"/>). Then it keeps partitions created ahead and applies retention,
/// and folds the pending sums into the rollups every <see cref="PostgresStoreOptions.FoldInterval"/>.
/// </summary>
internal sealed class PostgresSchemaInstaller(PostgresStoreContext context) : IHostedService, IAsyncDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private Task? loop;
    private Task? folding;
    private int disposed;

    /// <summary>Completes when the schema is ready (for tests and diagnostics).</summary>
    public Task Installed => installed.Task;

    private readonly TaskCompletionSource installed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        loop = Task.Run(() => RunAsync(stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // A host stopped after its container was disposed (WebApplicationFactory can do this) finds
        // the installer already stopped by DisposeAsync: nothing is left to do.
        if (Volatile.Read(ref disposed) != 0)
        {
            return;
        }

        try
        {
            await stopping.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        if (loop is not null)
        {
            await loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Registered both as itself and as a hosted service, so the container may dispose it twice.
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        await stopping.CancelAsync().ConfigureAwait(false);
        if (loop is not null)
        {
            await loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        stopping.Dispose();
    }

    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await InstallAsync(cancellationToken).ConfigureAwait(false);
            folding = Task.Run(() => FoldLoopAsync(cancellationToken), CancellationToken.None);
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await context.MaintainAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException && !cancellationToken.IsCancellationRequested)
                {
                    Log.MaintenanceFailed(context.Logger, ex);
                }

                await Task.Delay(context.Options.MaintenanceInterval, context.TimeProvider, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (cancellationToken.IsCancellationRequested && ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            // Stopped while an attempt was failing (a refused connection): the host is stopping
            // anyway, so the failure is no reason to fail the stop.
        }

        if (folding is not null)
        {
            await folding.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>Folds the pending sums every <see cref="PostgresStoreOptions.FoldInterval"/>, however few records came in (the store also folds every <see cref="PostgresStoreOptions.FoldEveryRecords"/> records).</summary>
    private async Task FoldLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(context.Options.FoldInterval, context.TimeProvider, cancellationToken).ConfigureAwait(false);
                await context.Fold.FoldAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                if (!cancellationToken.IsCancellationRequested)
                {
                    Log.FoldFailed(context.Logger, context.Schema, ex);
                }
            }
        }
    }

    private async Task InstallAsync(CancellationToken cancellationToken)
    {
        var attempt = 0;
        while (true)
        {
            attempt++;
            try
            {
                // The attempt a request waiting for the schema may have started already (see WhenReadyAsync).
                var applied = await context.InstallOnceAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                await context.MaintainAsync(cancellationToken).ConfigureAwait(false);
                Log.SchemaReady(context.Logger, context.Schema, applied);
                installed.TrySetResult();
                return;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                if (attempt == 1)
                {
                    Log.SchemaInstallFailed(context.Logger, context.Schema, ex.Message, context.Options.InstallRetryDelay, ex);
                }
                else
                {
                    Log.SchemaInstallRetryFailed(context.Logger, attempt, ex);
                }
            }

            // A request's own attempt may succeed in the meantime: then go on at once.
            await Task.WhenAny(Task.Delay(context.Options.InstallRetryDelay, context.TimeProvider, cancellationToken), context.Ready).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }
}
