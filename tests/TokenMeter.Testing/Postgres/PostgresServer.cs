using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Npgsql;

namespace TokenMeter.Testing.Postgres;

/// <summary>
/// A throwaway PostgreSQL server for tests and benchmarks: a fresh cluster from
/// <c>/usr/lib/postgresql/15/bin</c> in a temp folder, listening on 127.0.0.1 on a free port, or the
/// server named by the <c>TOKENMETER_TEST_POSTGRES</c> connection string when that is set.
/// Disposing stops the cluster (by its pid) and deletes its folder.
/// </summary>
public sealed partial class PostgresServer : IAsyncDisposable
{
    /// <summary>Environment variable naming an existing server to use instead of starting one.</summary>
    public const string EnvironmentVariable = "TOKENMETER_TEST_POSTGRES";

    private const string BinDirectory = "/usr/lib/postgresql/15/bin";
    private static readonly SemaphoreSlim SharedGate = new(1, 1);
    private static PostgresServer? shared;

    private readonly string? folder;
    private int postmasterPid;
    private string? serverOptions;
    private int disposed;

    private PostgresServer(string connectionString, string? folder, int postmasterPid)
    {
        ConnectionString = connectionString;
        this.folder = folder;
        this.postmasterPid = postmasterPid;
    }

    /// <summary>Connection string of the maintenance database (<c>postgres</c>) as a superuser.</summary>
    public string ConnectionString { get; }

    /// <summary>Whether this server is a cluster this process started (false for <c>TOKENMETER_TEST_POSTGRES</c>).</summary>
    public bool IsOwned => folder is not null;

    /// <summary>
    /// One server shared by everything in this process, started on first use and stopped when the
    /// process exits.
    /// </summary>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The shared server.</returns>
    public static async Task<PostgresServer> GetSharedAsync(CancellationToken cancellationToken = default)
    {
        if (shared is { } existing)
        {
            return existing;
        }

        await SharedGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (shared is null)
            {
                var server = await StartAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                AppDomain.CurrentDomain.ProcessExit += (_, _) => server.DisposeAsync().AsTask().GetAwaiter().GetResult();
                shared = server;
            }

            return shared;
        }
        finally
        {
            SharedGate.Release();
        }
    }

    /// <summary>
    /// Starts a fresh cluster, or connects to <c>TOKENMETER_TEST_POSTGRES</c> when it is set.
    /// </summary>
    /// <param name="settings">Extra server settings (<c>name=value</c>), e.g. <c>shared_buffers=512MB</c>.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running server.</returns>
    public static async Task<PostgresServer> StartAsync(IEnumerable<string>? settings = null, CancellationToken cancellationToken = default)
    {
        var external = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            return new PostgresServer(external, folder: null, postmasterPid: 0);
        }

        if (!File.Exists(Path.Combine(BinDirectory, "initdb")))
        {
            throw new InvalidOperationException(
                $"PostgreSQL 15 is not installed ({BinDirectory}/initdb is missing). Install the 'postgresql' package, or set {EnvironmentVariable} to a connection string.");
        }

        var asRoot = Environment.UserName == "root" || geteuid() == 0;
        var folder = Directory.CreateTempSubdirectory("tokenmeter-pg-").FullName;
        try
        {
            if (asRoot)
            {
                await RunAsync("chown", ["postgres:postgres", folder], asPostgres: false, cancellationToken).ConfigureAwait(false);
            }

            var data = Path.Combine(folder, "data");
            await RunAsync(Path.Combine(BinDirectory, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"], asRoot, cancellationToken).ConfigureAwait(false);

            string[] options =
            [
                "listen_addresses=127.0.0.1",
                $"unix_socket_directories={folder}",
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "max_connections=300",
                "shared_buffers=128MB",
                "max_wal_size=2GB",
                "log_min_messages=warning",
                .. settings ?? [],
            ];

            Exception? last = null;
            for (var attempt = 0; attempt < 3; attempt++)
            {
                var port = FreePort();
                var serverOptions = string.Join(' ', options.Select(o => "-c " + o)) + $" -p {port}";
                try
                {
                    await RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", data, "-l", Path.Combine(folder, "server.log"), "-o", serverOptions, "-w", "-t", "30", "start"], asRoot, cancellationToken).ConfigureAwait(false);
                }
                catch (InvalidOperationException ex)
                {
                    // Most likely someone took the port between our probe and the bind; try another.
                    last = ex;
                    continue;
                }

                var pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(data, "postmaster.pid"), cancellationToken).ConfigureAwait(false))[0], System.Globalization.CultureInfo.InvariantCulture);
                var connectionString = new NpgsqlConnectionStringBuilder
                {
                    Host = "127.0.0.1",
                    Port = port,
                    Username = "postgres",
                    Database = "postgres",
                    Pooling = true,
                    MaxPoolSize = 50,
                }.ConnectionString;
                StartWatchdog(pid, folder);
                return new PostgresServer(connectionString, folder, pid) { serverOptions = serverOptions };
            }

            throw new InvalidOperationException("PostgreSQL did not start.", last);
        }
        catch
        {
            TryDeleteFolder(folder);
            throw;
        }
    }

    /// <summary>Creates a fresh, empty database and returns its connection string.</summary>
    /// <param name="prefix">Start of the database name (letters, digits, underscores).</param>
    /// <param name="cancellationToken">Cancels the creation.</param>
    /// <returns>The connection string of the new database.</returns>
    public async Task<string> CreateDatabaseAsync(string prefix = "tm", CancellationToken cancellationToken = default)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}".ToLowerInvariant();
        if (!IdentifierRegex().IsMatch(name) || name.Length > 63)
        {
            throw new ArgumentException("The prefix must be a short lowercase identifier.", nameof(prefix));
        }

        await using (var connection = new NpgsqlConnection(ConnectionString))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>, closing its connections.</summary>
    /// <param name="connectionString">The database's connection string.</param>
    /// <param name="cancellationToken">Cancels the drop.</param>
    /// <returns>A task that completes when the database is gone.</returns>
    public async Task DropDatabaseAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var name = builder.Database ?? throw new ArgumentException("No database in the connection string.", nameof(connectionString));
        if (!IdentifierRegex().IsMatch(name))
        {
            throw new ArgumentException("Not a database made by this server.", nameof(connectionString));
        }

        // Pooled idle connections of this process would otherwise keep the database open.
        using (var pooled = new NpgsqlConnection(connectionString))
        {
            NpgsqlConnection.ClearPool(pooled);
        }

        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops the server of an owned cluster (fast shutdown: open connections are closed) and keeps
    /// its data, for outage tests; <see cref="StartAgainAsync"/> brings it back on the same port.
    /// Do not use it on the shared server.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when the server is down.</returns>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        var (data, asRoot) = OwnedData();
        await RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"], asRoot, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Starts again a server stopped by <see cref="StopAsync"/>, with the same settings and port.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when the server accepts connections.</returns>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        var (data, asRoot) = OwnedData();
        await RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", data, "-l", Path.Combine(folder!, "server.log"), "-o", serverOptions!, "-w", "-t", "30", "start"], asRoot, cancellationToken).ConfigureAwait(false);
        postmasterPid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(data, "postmaster.pid"), cancellationToken).ConfigureAwait(false))[0], System.Globalization.CultureInfo.InvariantCulture);
        StartWatchdog(postmasterPid, folder!);
    }

    private (string Data, bool AsRoot) OwnedData()
    {
        if (folder is null || serverOptions is null || ReferenceEquals(this, shared))
        {
            throw new InvalidOperationException("Only a cluster started by StartAsync (not the shared one, not TOKENMETER_TEST_POSTGRES) can be stopped and started.");
        }

        return (Path.Combine(folder, "data"), Environment.UserName == "root" || geteuid() == 0);
    }

    /// <summary>Stops the cluster (immediate shutdown of its postmaster) and deletes its folder.</summary>
    /// <returns>A task that completes when the cluster is gone.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0 || folder is null)
        {
            return;
        }

        NpgsqlConnection.ClearAllPools();
        if (postmasterPid > 0 && kill(postmasterPid, 3 /* SIGQUIT: immediate shutdown */) == 0)
        {
            var exited = await Eventually.PollAsync(_ => ValueTask.FromResult(kill(postmasterPid, 0) != 0), static gone => gone, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20)).ConfigureAwait(false);
            if (!exited.Met)
            {
                _ = kill(postmasterPid, 9);
            }
        }

        TryDeleteFolder(folder);
    }

    /// <summary>
    /// A detached shell that stops the cluster and deletes its folder once this process is gone, in
    /// case it dies (or is killed by the test runner) before <see cref="DisposeAsync"/> finishes.
    /// </summary>
    private static void StartWatchdog(int postmasterPid, string folder)
    {
        var start = new ProcessStartInfo
        {
            FileName = "setsid",
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add("sh");
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(
            "exec </dev/null >/dev/null 2>&1; " +
            "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; " +
            "[ -d \"$3\" ] || exit 0; " +
            "if tr '\\0' ' ' < /proc/\"$2\"/cmdline 2>/dev/null | grep -qF \"$3\"; then " +
            "kill -QUIT \"$2\"; i=0; while kill -0 \"$2\" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; kill -KILL \"$2\" 2>/dev/null; fi; " +
            "rm -rf \"$3\"");
        start.ArgumentList.Add("tokenmeter-pg-watchdog");
        start.ArgumentList.Add(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.ArgumentList.Add(postmasterPid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.ArgumentList.Add(folder);
        using var watchdog = Process.Start(start);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static async Task RunAsync(string file, string[] arguments, bool asPostgres, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo
        {
            FileName = asPostgres ? "runuser" : file,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (asPostgres)
        {
            foreach (var a in (string[])["-u", "postgres", "--", file])
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {file}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(file)} exited with {process.ExitCode}: {await stderr.ConfigureAwait(false)}{await stdout.ConfigureAwait(false)}");
        }
    }

    private static void TryDeleteFolder(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[a-z_][a-z0-9_]*$")]
    private static partial System.Text.RegularExpressions.Regex IdentifierRegex();

#pragma warning disable SYSLIB1054 // Two trivial libc calls; LibraryImport adds nothing here.
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [DllImport("libc")]
    private static extern uint geteuid();
#pragma warning restore SYSLIB1054
}
