using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using TokenMeter.Postgres.Diagnostics;

namespace TokenMeter.Postgres.Schema;

/// <summary>
/// Applies the embedded migrations to one schema: in order, in one transaction holding a
/// transaction-level advisory lock (so several instances starting at once end with one schema),
/// each recorded with its checksum; a recorded migration whose checksum changed is an error.
/// </summary>
internal static class PostgresMigrator
{
    /// <summary>Brings the schema up to date.</summary>
    /// <param name="dataSource">The database.</param>
    /// <param name="schema">A validated schema name.</param>
    /// <param name="logger">Where applied migrations are logged.</param>
    /// <param name="cancellationToken">Cancels the migration.</param>
    /// <returns>How many migrations were applied now.</returns>
    public static Task<int> MigrateAsync(NpgsqlDataSource dataSource, string schema, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        MigrateAsync(dataSource, schema, null, logger, cancellationToken);

    /// <summary>Applies the migrations up to and including <paramref name="upToVersion"/> only (tests that upgrade an older schema).</summary>
    /// <param name="dataSource">The database.</param>
    /// <param name="schema">A validated schema name.</param>
    /// <param name="upToVersion">The last migration to apply.</param>
    /// <param name="cancellationToken">Cancels the migration.</param>
    /// <returns>How many migrations were applied now.</returns>
    public static Task<int> MigrateToAsync(NpgsqlDataSource dataSource, string schema, int upToVersion, CancellationToken cancellationToken = default) =>
        MigrateAsync(dataSource, schema, upToVersion, null, cancellationToken);

    private static async Task<int> MigrateAsync(NpgsqlDataSource dataSource, string schema, int? upToVersion, ILogger? logger, CancellationToken cancellationToken)
    {
        logger ??= NullLogger.Instance;
        var quoted = PostgresIdentifiers.Quote(schema);
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);

        using (var batch = new NpgsqlBatch(connection, transaction))
        {
            var lockCommand = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock($1)");
            lockCommand.Parameters.Add(new NpgsqlParameter<long> { TypedValue = PostgresIdentifiers.MigrationLockKey(schema) });
            batch.BatchCommands.Add(lockCommand);
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"CREATE SCHEMA IF NOT EXISTS {quoted}"));
            batch.BatchCommands.Add(new NpgsqlBatchCommand(MigrationsTableSql(quoted)));
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var applied = new Dictionary<int, string>();
        using (var command = new NpgsqlCommand($"SELECT version, checksum FROM {quoted}.tokenmeter_migrations", connection, transaction))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                applied[reader.GetInt32(0)] = reader.GetString(1);
            }
        }

        var count = 0;
        foreach (var migration in PostgresMigration.All.Where(m => upToVersion is null || m.Version <= upToVersion))
        {
            if (applied.TryGetValue(migration.Version, out var checksum))
            {
                if (!string.Equals(checksum, migration.Checksum, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException(
                        $"TokenMeter migration {migration.Name} was applied to schema \"{schema}\" with checksum {checksum}, but this build's {migration.Name} has checksum {migration.Checksum}. Applied migrations must never change; add a new numbered migration instead.");
                }

                continue;
            }

            if (count == 0)
            {
                // Before the first migration to apply: the fold's lock, as a fold takes it first and the rollups' locks
                // after. An upgrade taking a rollup's lock first and the fold's later (0016 does) could otherwise deadlock
                // with an older instance's fold in flight; held from here, that fold commits first, and folds tried until
                // the upgrade commits leave their rows pending.
                using var foldLock = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({PostgresIdentifiers.FoldLockKey})", connection, transaction) { CommandTimeout = 0 };
                foldLock.Parameters.AddWithValue(schema);
                await foldLock.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            using (var command = new NpgsqlCommand(migration.Render(schema), connection, transaction))
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            using (var command = new NpgsqlCommand($"INSERT INTO {quoted}.tokenmeter_migrations (version, name, checksum) VALUES ($1, $2, $3)", connection, transaction))
            {
                command.Parameters.AddWithValue(migration.Version);
                command.Parameters.AddWithValue(migration.Name);
                command.Parameters.AddWithValue(migration.Checksum);
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            Log.MigrationApplied(logger, migration.Version, migration.Name, schema);
            count++;
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return count;
    }

    /// <summary>The whole schema as one script: lock, schema, migrations table, then each migration recorded as applied.</summary>
    /// <param name="schema">A validated schema name.</param>
    /// <returns>The script.</returns>
    public static string CreationScript(string schema)
    {
        var quoted = PostgresIdentifiers.Quote(schema);
        var script = new System.Text.StringBuilder();
        script.AppendLine(CultureInfo.InvariantCulture, $"-- TokenMeter PostgreSQL schema for \"{schema}\" (migrations 1..{PostgresMigration.Latest}).");
        script.AppendLine("-- Run with: psql -v ON_ERROR_STOP=1 -f tokenmeter.sql (safe to run again: applied migrations are skipped).");
        script.AppendLine("BEGIN;");
        script.AppendLine(CultureInfo.InvariantCulture, $"SELECT pg_advisory_xact_lock({PostgresIdentifiers.MigrationLockKey(schema)});");
        script.AppendLine(CultureInfo.InvariantCulture, $"SELECT pg_advisory_xact_lock({PostgresIdentifiers.FoldLockKey.Replace("$1", $"'{schema}'", StringComparison.Ordinal)});");
        script.AppendLine(CultureInfo.InvariantCulture, $"CREATE SCHEMA IF NOT EXISTS {quoted};");
        script.AppendLine(MigrationsTableSql(quoted) + ";");
        foreach (var migration in PostgresMigration.All)
        {
            script.AppendLine();
            script.AppendLine(CultureInfo.InvariantCulture, $"-- Migration {migration.Version}: {migration.Name}");
            script.AppendLine(CultureInfo.InvariantCulture, $"DO $tokenmeter_migration$ BEGIN");
            script.AppendLine(CultureInfo.InvariantCulture, $"IF EXISTS (SELECT 1 FROM {quoted}.tokenmeter_migrations WHERE version = {migration.Version}) THEN RETURN; END IF;");
            script.AppendLine("EXECUTE $tokenmeter_sql$");
            script.AppendLine(migration.Render(schema).TrimEnd());
            script.AppendLine("$tokenmeter_sql$;");
            script.AppendLine(CultureInfo.InvariantCulture, $"INSERT INTO {quoted}.tokenmeter_migrations (version, name, checksum) VALUES ({migration.Version}, '{migration.Name}', '{migration.Checksum}');");
            script.AppendLine("END $tokenmeter_migration$;");
        }

        script.AppendLine("COMMIT;");
        return script.ToString();
    }

    private static string MigrationsTableSql(string quoted) =>
        $"""
        CREATE TABLE IF NOT EXISTS {quoted}.tokenmeter_migrations (
            version    integer     NOT NULL PRIMARY KEY,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """;
}
