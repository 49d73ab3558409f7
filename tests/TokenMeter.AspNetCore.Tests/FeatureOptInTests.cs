using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TokenMeter.Metering;

namespace TokenMeter.AspNetCore.Tests;

/// <summary>A feature not added costs nothing: no background service, no observer, no route.</summary>
public sealed class FeatureOptInTests
{
    private static readonly string[] FeatureRoutes = ["/api/usage/budgets", "/api/usage/statements", "/api/usage/reports", "/api/usage/forecast/users"];

    [Fact]
    public async Task StoreAndAdminApiOnly_StartNoFeatureService_ObserveNothing_MapNoFeatureRoute()
    {
        await using var app = Build(tm => tm.AddPostgresStore("Host=127.0.0.1;Port=1;Database=none;Username=none"));

        var hosted = TokenMeterTypes(app.Services.GetServices<IHostedService>());
        Assert.Equal(["PostgresSchemaInstaller", "UsageWriter"], hosted);
        Assert.Empty(app.Services.GetServices<IUsageObserver>());
        Assert.Null(app.Services.GetService<TokenMeter.Budgets.BudgetGuard>());

        var routes = Routes(app);
        Assert.Contains("/api/usage/stats", routes);
        Assert.Contains("/api/usage/me", routes);
        Assert.Contains("/api/usage/forecast", routes);
        Assert.DoesNotContain(routes, r => FeatureRoutes.Any(f => r.StartsWith(f, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task EveryFeature_AddsItsServicesAndRoutes()
    {
        await using var app = Build(tm => tm.AddBudgets().AddAlerts().AddUsageReports().AddStatements());

        var hosted = TokenMeterTypes(app.Services.GetServices<IHostedService>());
        Assert.Equal(["AlertMailer", "AlertMonitor", "StatementClosedNotifier", "UsageReportService", "UsageWriter", "WebhookSender"], hosted);
        Assert.Equal(["AlertUsageObserver", "BudgetUsageObserver"], TokenMeterTypes(app.Services.GetServices<IUsageObserver>()));

        var routes = Routes(app);
        Assert.All(FeatureRoutes, f => Assert.Contains(routes, r => r.StartsWith(f, StringComparison.Ordinal)));
    }

    private static WebApplication Build(Action<ITokenMeterBuilder> features)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddAuthorization();
        features(builder.Services.AddTokenMeter());
        var app = builder.Build();
        app.MapTokenMeterAdmin("/api/usage");
        return app;
    }

    private static string[] TokenMeterTypes<T>(IEnumerable<T> services) =>
        services.Select(s => s!.GetType()).Where(t => t.Namespace?.StartsWith("TokenMeter", StringComparison.Ordinal) == true)
            .Select(t => t.Name).Order(StringComparer.Ordinal).ToArray();

    private static List<string> Routes(WebApplication app) =>
        ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Select(e => "/" + e.RoutePattern.RawText!.TrimStart('/')).ToList();
}
