using Npgsql;

namespace HomeworkApi.Accounts;

/// <summary>
/// Accounts in the sample's own PostgreSQL table <c>homework_users</c>, installed at start-up, or by the
/// first operation after it when PostgreSQL could not be reached then (every operation waits for the
/// table: one install attempt at a time, shared; while the database is unreachable it fails with the
/// connection's error, which the app answers with 503).
/// </summary>
internal sealed class PostgresAccountStore(NpgsqlDataSource dataSource) : IAccountStore
{
    // Any fixed number: one installer at a time across every instance sharing the database.
    private const long InstallLockKey = 7_216_334_101;

    private const string Columns = "id, username, email, password_hash, role, created_at";

    private readonly Lock gate = new();
    private volatile bool installed;
    private Task? attempt;

    public ValueTask InitializeAsync(CancellationToken cancellationToken) =>
        installed ? default : new ValueTask(InstallOnceAsync().WaitAsync(cancellationToken));

    /// <summary>The install attempt under way (or the one that succeeded), else a new one.</summary>
    private Task InstallOnceAsync()
    {
        lock (gate)
        {
            if (attempt is null || attempt.IsFaulted || attempt.IsCanceled)
            {
                attempt = Task.Run(InstallAsync, CancellationToken.None);

                // Its waiters may all have given up (their requests ended): the failure is observed here in any case.
                attempt.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }

            return attempt;
        }
    }

    private async Task InstallAsync()
    {
        var cancellationToken = CancellationToken.None;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key)", connection, transaction))
        {
            command.Parameters.AddWithValue("key", InstallLockKey);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        const string ddl = """
            CREATE TABLE IF NOT EXISTS homework_users (
                id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                username      text        NOT NULL,
                email         text        NOT NULL,
                password_hash text        NOT NULL,
                role          text        NOT NULL DEFAULT 'student' CHECK (role IN ('student', 'admin')),
                created_at    timestamptz NOT NULL DEFAULT now()
            );
            CREATE UNIQUE INDEX IF NOT EXISTS homework_users_username_key ON homework_users (lower(username));
            CREATE UNIQUE INDEX IF NOT EXISTS homework_users_email_key ON homework_users (lower(email));
            """;
        await using (var command = new NpgsqlCommand(ddl, connection, transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        installed = true;
    }

    public async ValueTask<(Account? Account, CreateAccountError Error)> CreateAsync(string username, string email, string passwordHash, string role, CancellationToken cancellationToken)
    {
        await InitializeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand(
            $"INSERT INTO homework_users (username, email, password_hash, role) VALUES (@username, @email, @hash, @role) RETURNING {Columns}");
        command.Parameters.AddWithValue("username", username);
        command.Parameters.AddWithValue("email", email);
        command.Parameters.AddWithValue("hash", passwordHash);
        command.Parameters.AddWithValue("role", role);
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return (Read(reader), CreateAccountError.None);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return (null, ex.ConstraintName == "homework_users_email_key" ? CreateAccountError.EmailTaken : CreateAccountError.UsernameTaken);
        }
    }

    public async ValueTask<Account?> FindByUsernameAsync(string username, CancellationToken cancellationToken)
    {
        await InitializeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM homework_users WHERE lower(username) = lower(@username)");
        command.Parameters.AddWithValue("username", username);
        return await ReadOneAsync(command, cancellationToken);
    }

    public async ValueTask<Account?> FindByIdAsync(long id, CancellationToken cancellationToken)
    {
        await InitializeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM homework_users WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return await ReadOneAsync(command, cancellationToken);
    }

    public async ValueTask<IReadOnlyList<Account>> FindByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken cancellationToken)
    {
        if (ids.Count == 0)
        {
            return [];
        }

        await InitializeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM homework_users WHERE id = ANY(@ids)");
        command.Parameters.AddWithValue("ids", ids.ToArray());
        var result = new List<Account>(ids.Count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(Read(reader));
        }

        return result;
    }

    public async ValueTask UpdateAsync(Account account, CancellationToken cancellationToken)
    {
        await InitializeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand("UPDATE homework_users SET email = @email, password_hash = @hash, role = @role WHERE id = @id");
        command.Parameters.AddWithValue("id", account.Id);
        command.Parameters.AddWithValue("email", account.Email);
        command.Parameters.AddWithValue("hash", account.PasswordHash);
        command.Parameters.AddWithValue("role", account.Role);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async ValueTask<bool> DeleteAsync(long id, CancellationToken cancellationToken)
    {
        await InitializeAsync(cancellationToken);
        await using var command = dataSource.CreateCommand("DELETE FROM homework_users WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async ValueTask<AccountPage> ListAsync(int limit, int offset, string? search, CancellationToken cancellationToken)
    {
        await InitializeAsync(cancellationToken);
        const string filter = "(@search::text IS NULL OR strpos(lower(username), lower(@search)) > 0 OR strpos(lower(email), lower(@search)) > 0)";
        await using var batch = dataSource.CreateBatch();
        var page = new NpgsqlBatchCommand($"SELECT {Columns} FROM homework_users WHERE {filter} ORDER BY id LIMIT @limit OFFSET @offset");
        page.Parameters.AddWithValue("search", (object?)search ?? DBNull.Value);
        page.Parameters.AddWithValue("limit", limit);
        page.Parameters.AddWithValue("offset", offset);
        var count = new NpgsqlBatchCommand($"SELECT count(*) FROM homework_users WHERE {filter}");
        count.Parameters.AddWithValue("search", (object?)search ?? DBNull.Value);
        batch.BatchCommands.Add(page);
        batch.BatchCommands.Add(count);
        var items = new List<Account>();
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            items.Add(Read(reader));
        }

        await reader.NextResultAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new AccountPage(items, reader.GetInt64(0));
    }

    private static async ValueTask<Account?> ReadOneAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    private static Account Read(NpgsqlDataReader reader) => new(
        reader.GetInt64(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetString(3),
        reader.GetString(4),
        reader.GetFieldValue<DateTimeOffset>(5));
}
