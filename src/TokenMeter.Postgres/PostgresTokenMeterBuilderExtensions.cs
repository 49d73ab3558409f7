using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using TokenMeter;
using TokenMeter.Budgets;
using TokenMeter.Configuration;
using TokenMeter.Postgres;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.RateLimits;
using TokenMeter.Postgres.Repricing;
using TokenMeter.Postgres.Schema;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;
using TokenMeter.RateLimits;
using TokenMeter.Repricing;
using TokenMeter.Storage;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the PostgreSQL store on a TokenMeter builder.</summary>
public static class PostgresTokenMeterBuilderExtensions
{
    /// <summary>
    /// Stores usage, budgets, budget reservations, rate-limit windows and deliveries in PostgreSQL
    /// instead of memory, so budgets and rate limits hold across every app instance. The schema installs
    /// itself at start-up (see <see cref="PostgresStoreOptions.InstallSchema"/>); when the database
    /// is unreachable the app still starts, logs one error, and retries in the background.
    /// Options bind from <c>TokenMeter:Postgres</c>.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="connectionString">The PostgreSQL connection string.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddPostgresStore(this ITokenMeterBuilder builder, string connectionString) => AddPostgresStore(builder, connectionString, configure: null);

    /// <summary>
    /// Stores usage, budgets, budget reservations, rate-limit windows and deliveries in PostgreSQL
    /// instead of memory, so budgets and rate limits hold across every app instance. The schema installs
    /// itself at start-up (see <see cref="PostgresStoreOptions.InstallSchema"/>); when the database
    /// is unreachable the app still starts, logs one error, and retries in the background.
    /// Options bind from <c>TokenMeter:Postgres</c>, then <paramref name="configure"/> runs.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="connectionString">The PostgreSQL connection string.</param>
    /// <param name="configure">Changes to the options after configuration is bound; may be null.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddPostgresStore(this ITokenMeterBuilder builder, string connectionString, Action<PostgresStoreOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new ArgumentException(
                "The PostgreSQL connection string is missing: set ConnectionStrings:" + ConnectionStringName + " (environment variable ConnectionStrings__"
                + ConnectionStringName + "), or call AddPostgresStore() to use the NpgsqlDataSource registered in the container.",
                nameof(connectionString));
        }

        return AddPostgresStore(builder, _ => (NpgsqlDataSource.Create(connectionString), true), configure);
    }

    /// <summary>
    /// Stores usage, budgets and deliveries in PostgreSQL through the <see cref="NpgsqlDataSource"/>
    /// registered in the container (<c>builder.AddNpgsqlDataSource("tokenmeter")</c> in Aspire, or
    /// <c>services.AddNpgsqlDataSource(...)</c>), which the container owns; without one, through the
    /// connection string <c>ConnectionStrings:TokenMeter</c>. Start-up fails with a message naming
    /// both when there is neither. Otherwise the same as the other overloads.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddPostgresStore(this ITokenMeterBuilder builder) => AddPostgresStore(builder, configure: (Action<PostgresStoreOptions>?)null);

    /// <summary>
    /// Stores usage, budgets and deliveries in PostgreSQL through the <see cref="NpgsqlDataSource"/>
    /// registered in the container, else the connection string <c>ConnectionStrings:TokenMeter</c>
    /// (see <see cref="AddPostgresStore(ITokenMeterBuilder)"/>); options bind from
    /// <c>TokenMeter:Postgres</c>, then <paramref name="configure"/> runs.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Changes to the options after configuration is bound; may be null.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddPostgresStore(this ITokenMeterBuilder builder, Action<PostgresStoreOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return AddPostgresStore(builder, FromContainer, configure);
    }

    private const string ConnectionStringName = "TokenMeter";

    private static (NpgsqlDataSource DataSource, bool Owned) FromContainer(IServiceProvider services)
    {
        if (services.GetService<NpgsqlDataSource>() is { } registered)
        {
            return (registered, false);
        }

        var connectionString = services.GetService<IConfiguration>()?.GetConnectionString(ConnectionStringName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                "TokenMeter's PostgreSQL store has no database: register an NpgsqlDataSource (services.AddNpgsqlDataSource(...), or builder.AddNpgsqlDataSource(...) in Aspire) "
                + "or set ConnectionStrings:" + ConnectionStringName + " (environment variable ConnectionStrings__" + ConnectionStringName + ").");
        }

        return (NpgsqlDataSource.Create(connectionString), true);
    }

    /// <summary>
    /// Stores usage, budgets and deliveries in PostgreSQL through the given data source (which the
    /// caller owns and disposes). Otherwise the same as the connection-string overloads.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="dataSource">The data source to use.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddPostgresStore(this ITokenMeterBuilder builder, NpgsqlDataSource dataSource) => AddPostgresStore(builder, dataSource, configure: null);

    /// <summary>
    /// Stores usage, budgets and deliveries in PostgreSQL through the given data source (which the
    /// caller owns and disposes). Otherwise the same as the connection-string overloads.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="dataSource">The data source to use.</param>
    /// <param name="configure">Changes to the options after configuration is bound; may be null.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddPostgresStore(this ITokenMeterBuilder builder, NpgsqlDataSource dataSource, Action<PostgresStoreOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(dataSource);
        return AddPostgresStore(builder, _ => (dataSource, false), configure);
    }

    private static ITokenMeterBuilder AddPostgresStore(ITokenMeterBuilder builder, Func<IServiceProvider, (NpgsqlDataSource DataSource, bool Owned)> dataSource, Action<PostgresStoreOptions>? configure)
    {
        var services = builder.Services;
        var options = services.AddValidatedOptions<PostgresStoreOptions, PostgresStoreOptionsValidator>(PostgresStoreOptions.SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);

        // Calling this twice replaces the earlier data source rather than adding a second store.
        services.RemoveAll<PostgresStoreContext>();
        services.AddSingleton(sp =>
        {
            var (source, owned) = dataSource(sp);
            return new PostgresStoreContext(
                source,
                owned,
                sp.GetRequiredService<IOptions<PostgresStoreOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILoggerFactory>()?.CreateLogger("TokenMeter.Postgres"));
        });

        services.TryAddSingleton<PostgresUsageStore>();
        services.TryAddSingleton<PostgresUsageQueries>();
        services.TryAddSingleton<PostgresBudgetStore>();
        services.TryAddSingleton<PostgresDeliveryLog>();
        services.TryAddSingleton<HeadroomSlices>();
        services.TryAddSingleton<PostgresBudgetReservations>();
        services.TryAddSingleton<PostgresRateLimitStore>();
        services.TryAddSingleton<PostgresRepricingStore>();
        var firstCall = !services.Any(d => d.ServiceType == typeof(PostgresSchemaInstaller));
        services.TryAddSingleton<PostgresSchemaInstaller>();
        services.TryAddKeyedSingleton<IHealthCheck>(TokenMeterHealthChecks.StoreCheckName, (sp, _) => new PostgresStoreHealthCheck(sp.GetRequiredService<PostgresStoreContext>()));

        // The store slot: features' decorators (the budget limit cache) wrap these whatever the order.
        builder.UseStore<IUsageStore>(sp => sp.GetRequiredService<PostgresUsageStore>());
        builder.UseStore<IUsageQueries>(sp => sp.GetRequiredService<PostgresUsageQueries>());
        builder.UseStore<IBudgetStore>(sp => sp.GetRequiredService<PostgresBudgetStore>());
        builder.UseStore<IDeliveryLog>(sp => sp.GetRequiredService<PostgresDeliveryLog>());
        builder.UseStore<IUsageRepricingStore>(sp => sp.GetRequiredService<PostgresRepricingStore>());

        // Shared reservations and windows replace the in-memory ones whatever the order of the calls.
        services.RemoveAll<IBudgetReservationStore>();
        services.RemoveAll<IRateLimitStore>();

        // Budgets and rate limits hold across every instance sharing this database.
        services.AddSingleton<IBudgetReservationStore>(sp => sp.GetRequiredService<PostgresBudgetReservations>());
        services.AddSingleton<IRateLimitStore>(sp => sp.GetRequiredService<PostgresRateLimitStore>());

        // Their settles are written after the responses, batched into one statement.
        RateLimitServiceCollectionExtensions.AddSharedLimitSettler(services);

        if (firstCall)
        {
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<PostgresSchemaInstaller>());
        }

        return builder;
    }
}
