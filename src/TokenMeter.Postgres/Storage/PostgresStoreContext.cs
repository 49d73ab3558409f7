using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using TokenMeter.Postgres.Diagnostics;
using TokenMeter.Postgres.Schema;

using TokenMeter.Storage;

namespace TokenMeter.Postgres.Storage;

/// <summary>What every part of the store shares: the data source, the schema, readiness, the clock.</summary>
internal sealed class PostgresStoreContext : IAsyncDisposable
{
    private readonly bool ownsDataSource;
    private readonly ConcurrentDictionary<DateOnly, bool> knownPartitions = new();
    private volatile bool ready;
    private readonly TaskCompletionSource readySignal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock installGate = new();
    private readonly CancellationTokenSource disposing = new();
    private Task<int>? installAttempt;

    public PostgresStoreContext(NpgsqlDataSource dataSource, bool ownsDataSource, PostgresStoreOptions options, TimeProvider timeProvider, ILogger? logger = null)
    {
        DataSource = dataSource;
        this.ownsDataSource = ownsDataSource;
        Options = options;
        Schema = PostgresIdentifiers.ValidateSchema(options.Schema);
        Quoted = PostgresIdentifiers.Quote(Schema);
        TimeProvider = timeProvider;
        Logger = logger ?? NullLogger.Instance;
        if (!options.InstallSchema)
        {
            MarkReady();
        }
        Sql = new PostgresSql(Quoted);
        Fold = new PostgresPendingFold(this);
    }

    public NpgsqlDataSource DataSource { get; }

    public PostgresStoreOptions Options { get; }

    /// <summary>The schema name (validated).</summary>
    public string Schema { get; }

    /// <summary>The schema as a quoted identifier.</summary>
    public string Quoted { get; }

    public TimeProvider TimeProvider { get; }

    public ILogger Logger { get; }

    public PostgresSql Sql { get; }

    /// <summary>Folds the pending sums into the rollups.</summary>
    public PostgresPendingFold Fold { get; }

    /// <summary>The records of calls decided from budget slices, followed until they are stored.</summary>
    public SliceLandings Landings { get; } = new();

    public int CommandTimeout => Options.CommandTimeoutSeconds;

    /// <summary>True once the schema is installed (or installing it is someone else's job).</summary>
    public bool IsReady => ready;

    /// <summary>Completes when the schema is installed.</summary>
    public Task Ready => readySignal.Task;

    public void MarkReady()
    {
        ready = true;
        readySignal.TrySetResult();
    }

    /// <summary>
    /// Returns at once when the schema is installed. Before that (a request right after start-up, or
    /// after the database came back from an outage at start-up) it joins the install attempt under way,
    /// or starts one, and waits for it, so the caller never meets a missing table; when the attempt
    /// fails it throws <see cref="UsageStoreNotReadyException"/> with the reason (the store cannot be
    /// reached: an app answers 503).
    /// </summary>
    public ValueTask WhenReadyAsync(CancellationToken cancellationToken) =>
        ready ? default : new ValueTask(WaitForInstallAsync(cancellationToken));

    /// <summary>
    /// One install attempt at a time, shared by the start-up installer and every request waiting for
    /// the schema: the attempt under way (or the one that succeeded), else a new one.
    /// </summary>
    /// <returns>How many migrations the attempt applied.</returns>
    public Task<int> InstallOnceAsync()
    {
        lock (installGate)
        {
            if (installAttempt is null || (installAttempt.IsCompleted && !installAttempt.IsCompletedSuccessfully))
            {
                installAttempt = Task.Run(() => InstallAsync(disposing.Token), CancellationToken.None);

                // Its waiters may all have given up (their requests ended): the failure is observed here in any case.
                installAttempt.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }

            return installAttempt;
        }
    }

    private async Task<int> InstallAsync(CancellationToken cancellationToken)
    {
        var applied = Options.InstallSchema
            ? await PostgresMigrator.MigrateAsync(DataSource, Schema, Logger, cancellationToken).ConfigureAwait(false)
            : 0;
        MarkReady();
        return applied;
    }

    /// <summary>A connection from the pool, once the schema is installed (see <see cref="WhenReadyAsync"/>).</summary>
    public ValueTask<NpgsqlConnection> OpenConnectionAsync(CancellationToken cancellationToken) =>
        ready ? DataSource.OpenConnectionAsync(cancellationToken) : OpenWhenReadyAsync(cancellationToken);

    private async ValueTask<NpgsqlConnection> OpenWhenReadyAsync(CancellationToken cancellationToken)
    {
        await WaitForInstallAsync(cancellationToken).ConfigureAwait(false);
        return await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task WaitForInstallAsync(CancellationToken cancellationToken)
    {
        try
        {
            await InstallOnceAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!ready && !cancellationToken.IsCancellationRequested && ex is not UsageStoreNotReadyException)
        {
            throw new UsageStoreNotReadyException($"the PostgreSQL schema \"{Schema}\" is not installed yet: {ex.Message}", ex);
        }
    }

    public void ThrowIfNotReady()
    {
        if (!ready)
        {
            throw new UsageStoreNotReadyException($"the PostgreSQL schema \"{Schema}\" is not installed yet (the start-up installer retries until the database answers)");
        }
    }

    /// <summary>Creates the partitions of <c>user_api_usage</c> for these months unless this instance already knows they exist.</summary>
    public async ValueTask EnsurePartitionsAsync(IEnumerable<DateOnly> months, CancellationToken cancellationToken)
    {
        List<DateOnly>? missing = null;
        foreach (var month in months)
        {
            if (!knownPartitions.ContainsKey(month) && !(missing ??= []).Contains(month))
            {
                missing.Add(month);
            }
        }

        if (missing is null)
        {
            return;
        }

        missing.Sort();
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        foreach (var month in missing)
        {
            var command = new NpgsqlCommand($"SELECT {Quoted}.tokenmeter_create_partition($1)", connection) { CommandTimeout = CommandTimeout };
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<DateOnly> { TypedValue = month });
            if (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true)
            {
                Log.PartitionCreated(Logger, month, Schema);
            }

            knownPartitions[month] = true;
        }
    }

    /// <summary>Forgets which partitions exist (after retention, or when an insert found one missing).</summary>
    public void ForgetPartitions() => knownPartitions.Clear();

    public static DateOnly MonthOf(DateTimeOffset instant)
    {
        var utc = instant.UtcDateTime;
        return new DateOnly(utc.Year, utc.Month, 1);
    }

    public static DateOnly MonthOf(DateOnly day) => new(day.Year, day.Month, 1);

    public DateOnly CurrentMonth() => MonthOf(TimeProvider.GetUtcNow());

    /// <summary>Creates partitions from the current month to <see cref="PostgresStoreOptions.PartitionsAhead"/> ahead, and applies retention.</summary>
    public async Task MaintainAsync(CancellationToken cancellationToken)
    {
        var current = CurrentMonth();
        await EnsurePartitionsAsync(Enumerable.Range(0, Options.PartitionsAhead + 1).Select(current.AddMonths), cancellationToken).ConfigureAwait(false);
        if (Options.RetentionMonths is int keep)
        {
            await DropPartitionsBeforeAsync(current.AddMonths(-keep), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Drops the raw partitions of every month before <paramref name="month"/>. Every unfolded batch is folded first, in
    /// the same transaction under the fold lock: a batch is folded from its raw rows, which the drop removes.
    /// </summary>
    public async Task<IReadOnlyList<string>> DropPartitionsBeforeAsync(DateOnly month, CancellationToken cancellationToken)
    {
        var dropped = new List<string>();
        var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using var transactionScope = transaction.ConfigureAwait(false);
            await Fold.LockAsync(connection, transaction, wait: true, cancellationToken).ConfigureAwait(false);
            await Fold.FoldLockedAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
            using (var command = new NpgsqlCommand($"SELECT * FROM {Quoted}.tokenmeter_drop_partitions_before($1)", connection, transaction))
            {
                command.CommandTimeout = CommandTimeout;
                command.Parameters.Add(new NpgsqlParameter<DateOnly> { TypedValue = month });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using var readerScope = reader.ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    dropped.Add(reader.GetString(0));
                }
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        ForgetPartitions();
        foreach (var name in dropped)
        {
            Log.PartitionDropped(Logger, name, Schema);
        }

        return dropped;
    }

    public async ValueTask DisposeAsync()
    {
        await disposing.CancelAsync().ConfigureAwait(false);
        await Fold.DisposeAsync().ConfigureAwait(false);
        if (ownsDataSource)
        {
            await DataSource.DisposeAsync().ConfigureAwait(false);
        }
    }
}
