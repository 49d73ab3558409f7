using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TokenMeter.Postgres.Storage;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Schema;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Testing;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

public sealed class RegistrationTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    [Fact]
    public async Task AddPostgresStore_Host_InstallsSchemaAndServesEveryStoreInterface()
    {
        var schema = "app_" + Guid.NewGuid().ToString("N")[..8];
        using var host = BuildHost(b => b.AddPostgresStore(database.ConnectionString, o => o.Schema = schema));
        await host.StartAsync();
        await host.Services.GetRequiredService<PostgresSchemaInstaller>().Installed.WaitAsync(TimeSpan.FromSeconds(20));

        var store = host.Services.GetRequiredService<IUsageStore>();
        Assert.Equal("PostgresUsageStore", store.GetType().Name);
        Assert.Equal("PostgresUsageQueries", host.Services.GetRequiredService<IUsageQueries>().GetType().Name);
        Assert.Equal("PostgresBudgetStore", host.Services.GetRequiredService<IBudgetStore>().GetType().Name);
        Assert.Equal("PostgresDeliveryLog", host.Services.GetRequiredService<IDeliveryLog>().GetType().Name);

        var now = DateTimeOffset.UtcNow;
        Assert.Equal(1, await store.AppendAsync([Records.Make(now)]));
        Assert.Equal(1, (await host.Services.GetRequiredService<IUsageQueries>().GetStatsAsync(DateOnly.FromDateTime(now.UtcDateTime))).Today.Figures.Calls);
        await host.StopAsync();
    }

    [Fact]
    public async Task AddPostgresStore_HostStoppedAfterItsContainerWasDisposed_StopsQuietly()
    {
        // WebApplicationFactory can stop a host whose services were already disposed; seen once in CI
        // as ObjectDisposedException from the schema installer's StopAsync.
        var schema = "app_" + Guid.NewGuid().ToString("N")[..8];
        var host = BuildHost(b => b.AddPostgresStore(database.ConnectionString, o => o.Schema = schema));
        await host.StartAsync();
        var installer = host.Services.GetRequiredService<PostgresSchemaInstaller>();
        await installer.Installed.WaitAsync(TimeSpan.FromSeconds(20));

        await installer.DisposeAsync();
        await installer.StopAsync(CancellationToken.None);
        await host.StopAsync();
        host.Dispose();
    }

    [Fact]
    public async Task AddPostgresStore_OptionsFromConfiguration_BadSchemaFailsStartNamingTheKey()
    {
        using var host = BuildHost(b => b.AddPostgresStore(database.ConnectionString), new Dictionary<string, string?> { ["TokenMeter:Postgres:Schema"] = "x; DROP TABLE y" });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("TokenMeter:Postgres:Schema", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddPostgresStore_DatabaseDownAtStartUp_HostStartsLogsOneErrorAndInstallsWhenItComesBack()
    {
        // A database that does not exist yet stands for one that is down; creating it brings it "up".
        var name = "late_" + Guid.NewGuid().ToString("N")[..10];
        var connectionString = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Database = name, Timeout = 2 }.ConnectionString;
        var logs = new ConcurrentQueue<(LogLevel Level, string Message)>();
        using var host = BuildHost(
            b => b.AddPostgresStore(connectionString, o => o.InstallRetryDelay = TimeSpan.FromMilliseconds(50)),
            logs: logs);

        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var store = host.Services.GetRequiredService<IUsageStore>();
        var installer = host.Services.GetRequiredService<PostgresSchemaInstaller>();
        await Eventually.TrueAsync(() => logs.Any(l => l.Level == LogLevel.Error));

        var write = await Assert.ThrowsAsync<UsageStoreNotReadyException>(() => store.AppendAsync([Records.Make(DateTimeOffset.UtcNow)]).AsTask());
        Assert.Contains("not installed", write.Message, StringComparison.Ordinal);

        // The installer's own record of its retries (debug event 2501): three more failed attempts, still one error.
        await Eventually.TrueAsync(() => logs.Count(l => l.Level == LogLevel.Debug && l.Message.Contains("attempt 4 failed", StringComparison.Ordinal)) == 1, TimeSpan.FromSeconds(30));
        Assert.Single(logs, l => l.Level == LogLevel.Error);
        Assert.Contains(logs, l => l.Level == LogLevel.Error && l.Message.Contains("could not install", StringComparison.Ordinal) && l.Message.Contains("retrying", StringComparison.Ordinal));

        await using (var admin = new NpgsqlConnection(database.Server.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            await create.ExecuteNonQueryAsync();
        }

        try
        {
            await installer.Installed.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(1, await store.AppendAsync([Records.Make(DateTimeOffset.UtcNow)]));
            await host.StopAsync();
        }
        finally
        {
            await database.Server.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task AddPostgresStore_AQueryBeforeTheSchemaIsInstalled_InstallsItAndAnswers_NeverAMissingTable()
    {
        // The installer's next retry is minutes away: only the query's own install attempt can bring the schema.
        var name = "late_" + Guid.NewGuid().ToString("N")[..10];
        var connectionString = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Database = name, Timeout = 2 }.ConnectionString;
        var logs = new ConcurrentQueue<(LogLevel Level, string Message)>();
        using var host = BuildHost(b => b.AddPostgresStore(connectionString, o => o.InstallRetryDelay = TimeSpan.FromMinutes(5)), logs: logs);
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => logs.Any(l => l.Level == LogLevel.Error));
        var queries = host.Services.GetRequiredService<IUsageQueries>();
        var installer = host.Services.GetRequiredService<PostgresSchemaInstaller>();

        // Still down: the query says the store is not ready (an app answers 503), with the reason.
        var down = await Assert.ThrowsAsync<UsageStoreNotReadyException>(() => queries.GetStatsAsync(DateOnly.FromDateTime(DateTime.UtcNow)).AsTask());
        Assert.Contains("not installed yet", down.Message, StringComparison.Ordinal);
        Assert.NotNull(down.InnerException);

        await using (var admin = new NpgsqlConnection(database.Server.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            await create.ExecuteNonQueryAsync();
        }

        try
        {
            // Back: several queries at once share one install attempt and all answer.
            var today = DateOnly.FromDateTime(DateTime.UtcNow);
            var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => queries.GetStatsAsync(today).AsTask())).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.All(answers, stats => Assert.Equal(0, stats.ActiveUsers));
            Assert.Empty(await queries.GetEndpointUsageAsync());

            // The installer goes on at once (partitions, folding) without waiting out its retry delay.
            await installer.Installed.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(1, await host.Services.GetRequiredService<IUsageStore>().AppendAsync([Records.Make(DateTimeOffset.UtcNow)]));
            Assert.DoesNotContain(logs, l => l.Message.Contains("42P01", StringComparison.Ordinal));
            await host.StopAsync();
        }
        finally
        {
            await database.Server.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task AddPostgresStore_NobodyListening_StartDoesNotBlockAndWritesFail()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var logs = new ConcurrentQueue<(LogLevel Level, string Message)>();
        using var host = BuildHost(b => b.AddPostgresStore($"Host=127.0.0.1;Port={port};Username=x;Timeout=2", o => o.InstallRetryDelay = TimeSpan.FromMinutes(5)), logs: logs);

        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(5));
        await Eventually.TrueAsync(() => logs.Any(l => l.Level == LogLevel.Error));

        await Assert.ThrowsAsync<UsageStoreNotReadyException>(() => host.Services.GetRequiredService<IUsageStore>().AppendAsync([Records.Make(DateTimeOffset.UtcNow)]).AsTask());
        await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(5));
    }

    private static IHost BuildHost(Action<ITokenMeterBuilder> configure, Dictionary<string, string?>? settings = null, ConcurrentQueue<(LogLevel, string)>? logs = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings ?? []);
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(new QueueLoggerProvider(logs));
            builder.Logging.AddFilter("TokenMeter", LogLevel.Debug);
        }

        configure(builder.Services.AddTokenMeter());
        return builder.Build();
    }

    private sealed class QueueLoggerProvider(ConcurrentQueue<(LogLevel, string)> logs) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new QueueLogger(logs);

        public void Dispose()
        {
        }

        private sealed class QueueLogger(ConcurrentQueue<(LogLevel, string)> logs) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                logs.Enqueue((logLevel, formatter(state, exception)));
        }
    }
}
