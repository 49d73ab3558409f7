using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using TokenMeter.Postgres.Storage;
using TokenMeter.Postgres.Schema;
using TokenMeter.Storage;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>AddPostgresStore() with the data source from the container, its error when there is none, and the store's health check.</summary>
public sealed class DataSourceAndHealthTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    [Fact]
    public async Task AddPostgresStore_NoArguments_UsesTheNpgsqlDataSourceRegisteredInTheContainer()
    {
        var schema = "ds_" + Guid.NewGuid().ToString("N")[..8];
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString);
        using var host = BuildHost(services =>
        {
            services.AddSingleton(dataSource); // what AddNpgsqlDataSource / Aspire's AddNpgsqlDataSource register
            services.AddTokenMeter().AddPostgresStore(o => o.Schema = schema);
        });

        await host.StartAsync();
        await host.Services.GetRequiredService<PostgresSchemaInstaller>().Installed.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, await host.Services.GetRequiredService<IUsageStore>().AppendAsync([Records.Make(DateTimeOffset.UtcNow)]));
        await host.StopAsync();

        // The container did not own the data source: it still works after the host is gone.
        host.Dispose();
        await using var command = dataSource.CreateCommand($"SELECT count(*) FROM \"{schema}\".user_api_usage");
        Assert.Equal(1L, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task AddPostgresStore_NoArguments_FallsBackToTheConnectionStringTokenMeter()
    {
        var schema = "cs_" + Guid.NewGuid().ToString("N")[..8];
        using var host = BuildHost(
            services => services.AddTokenMeter().AddPostgresStore(o => o.Schema = schema),
            new() { ["ConnectionStrings:TokenMeter"] = database.ConnectionString });

        await host.StartAsync();
        await host.Services.GetRequiredService<PostgresSchemaInstaller>().Installed.WaitAsync(TimeSpan.FromSeconds(20));
        await host.StopAsync();
    }

    [Fact]
    public async Task AddPostgresStore_NoDataSourceNoConnectionString_StartFailsNamingBoth()
    {
        using var host = BuildHost(services => services.AddTokenMeter().AddPostgresStore());

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Contains("ConnectionStrings:TokenMeter", error.Message, StringComparison.Ordinal);
        Assert.Contains("NpgsqlDataSource", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void AddPostgresStore_MissingConnectionString_ThrowsNamingTheKey(string? connectionString)
    {
        var services = new ServiceCollection();

        var error = Assert.Throws<ArgumentException>(() => services.AddTokenMeter().AddPostgresStore(connectionString!));

        Assert.Contains("ConnectionStrings:TokenMeter", error.Message, StringComparison.Ordinal);
        Assert.Equal("connectionString", error.ParamName);
    }

    [Fact]
    public async Task HealthCheck_HealthyOnceInstalled_UnhealthyWhenUnreachable()
    {
        var schema = "hc_" + Guid.NewGuid().ToString("N")[..8];
        using var host = BuildHost(services =>
        {
            services.AddHealthChecks().AddTokenMeter();
            services.AddTokenMeter().AddPostgresStore(database.ConnectionString, o => o.Schema = schema);
        });
        await host.StartAsync();
        await host.Services.GetRequiredService<PostgresSchemaInstaller>().Installed.WaitAsync(TimeSpan.FromSeconds(20));

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        var store = report.Entries[TokenMeterHealthChecks.StoreCheckName];
        Assert.Equal(HealthStatus.Healthy, store.Status);
        Assert.Equal(schema, store.Data["schema"]);
        Assert.Equal(HealthStatus.Healthy, report.Entries[TokenMeterHealthChecks.WriterCheckName].Status);
        await host.StopAsync();

        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        using var down = BuildHost(services =>
        {
            services.AddHealthChecks().AddTokenMeter();
            services.AddTokenMeter().AddPostgresStore($"Host=127.0.0.1;Port={port};Username=x;Timeout=2", o => o.InstallRetryDelay = TimeSpan.FromMinutes(5));
        });
        await down.StartAsync();
        var downReport = await down.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        var downStore = downReport.Entries[TokenMeterHealthChecks.StoreCheckName];
        Assert.Equal(HealthStatus.Unhealthy, downStore.Status);
        Assert.Contains("unreachable", downStore.Description, StringComparison.Ordinal);
        Assert.Equal(false, downStore.Data["schemaInstalled"]);
        await down.StopAsync();
    }

    private static IHost BuildHost(Action<IServiceCollection> configure, Dictionary<string, string?>? settings = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings ?? []);
        builder.Logging.ClearProviders();
        builder.Services.Configure<TokenMeter.Writing.UsageWriterOptions>(o => o.SpoolDirectory = Path.Combine(Path.GetTempPath(), "tokenmeter-tests", "spool-" + Guid.NewGuid().ToString("N")));
        configure(builder.Services);
        return builder.Build();
    }
}
