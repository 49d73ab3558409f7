using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TokenMeter.Budgets;
using TokenMeter.Delivery;
using TokenMeter.Metering;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.AspNetCore.Tests;

/// <summary>The order of the builder calls never changes what the container resolves.</summary>
public sealed class RegistrationOrderTests
{
    private static readonly Dictionary<string, Action<ITokenMeterBuilder>> Features = new()
    {
        ["postgres"] = b => b.AddPostgresStore("Host=127.0.0.1;Port=1;Database=none;Username=none"),
        ["budgets"] = b => b.AddBudgets(),
        ["alerts"] = b => b.AddAlerts(),
        ["reports"] = b => b.AddUsageReports(),
        ["statements"] = b => b.AddStatements(),
        ["email"] = b => b.AddSmtpEmail(),
        ["aspnetcore"] = b => b.AddTokenMeterAspNetCore(),
    };

    public static TheoryData<string, string> Pairs()
    {
        var names = Features.Keys.ToArray();
        var pairs = new TheoryData<string, string>();
        for (var i = 0; i < names.Length; i++)
        {
            for (var j = i + 1; j < names.Length; j++)
            {
                pairs.Add(names[i], names[j]);
            }
        }

        return pairs;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void EveryPairOfFeatures_ResolvesTheSameServices_InBothOrders(string first, string second)
    {
        using var forward = Build(first, second);
        using var backward = Build(second, first);

        Assert.Equal(Describe(forward.Services), Describe(backward.Services));
    }

    [Fact]
    public void BudgetCache_WrapsThePostgresBudgetStore_InBothOrders()
    {
        foreach (var order in new[] { new[] { "postgres", "budgets" }, ["budgets", "postgres"] })
        {
            using var host = Build(order);
            var cache = Assert.IsType<CachingBudgetStore>(host.Services.GetRequiredService<IBudgetStore>());
            Assert.Equal("PostgresBudgetStore", cache.Inner.GetType().Name);
        }
    }

    [Fact]
    public void StoreRegisteredBeforeAddTokenMeter_MovesIntoTheSlot_AndIsCached()
    {
        var own = new InMemoryUsageStore(TimeProvider.System);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSingleton<IBudgetStore>(own);
        builder.Services.AddTokenMeter().AddBudgets();
        using var host = builder.Build();

        var cache = Assert.IsType<CachingBudgetStore>(host.Services.GetRequiredService<IBudgetStore>());
        Assert.Same(own, cache.Inner);
    }

    private static IHost Build(params string[] features)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Reports:Smtp:Host"] = "127.0.0.1",
            ["TokenMeter:Reports:Smtp:From"] = "tokenmeter@example.com",
            ["TokenMeter:Reports:To:0"] = "admin@example.com",
            ["TokenMeter:Alerts:WebhookUrl"] = "http://127.0.0.1:9/hooks",
            ["TokenMeter:Alerts:WebhookSecret"] = "order-secret",
        });
        var tokenMeter = builder.Services.AddTokenMeter();
        foreach (var feature in features)
        {
            Features[feature](tokenMeter);
        }

        return builder.Build();
    }

    /// <summary>What the container hands out: each store part (with its decorators), the background services, observers and senders.</summary>
    private static List<string> Describe(IServiceProvider services)
    {
        var described = new List<string>
        {
            "usage store: " + Chain(services.GetRequiredService<IUsageStore>()),
            "queries: " + Chain(services.GetRequiredService<IUsageQueries>()),
            "budget store: " + Chain(services.GetRequiredService<IBudgetStore>()),
            "delivery log: " + Chain(services.GetRequiredService<IDeliveryLog>()),
            "budget guard: " + (services.GetService<BudgetGuard>() is not null),
            "email sender: " + services.GetService<IEmailSender>()?.GetType().Name,
            "webhook sender: " + services.GetService<IWebhookSender>()?.GetType().Name,
        };
        described.AddRange(services.GetServices<IHostedService>().Select(s => "hosted: " + s.GetType().Name).Order(StringComparer.Ordinal));
        described.AddRange(services.GetServices<IUsageObserver>().Select(s => "observer: " + s.GetType().Name).Order(StringComparer.Ordinal));
        return described;
    }

    private static string Chain(object part) => part is CachingBudgetStore cache ? $"{nameof(CachingBudgetStore)}({Chain(cache.Inner)})" : part.GetType().Name;
}
