using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore;
using TokenMeter.AspNetCore.Endpoints;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps TokenMeter's admin usage API.</summary>
public static class TokenMeterAdminEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the usage API under <paramref name="prefix"/>: stats, summaries, per-user detail,
    /// endpoints, daily and monthly trends, the month's forecast and CSV exports (admin only, see
    /// <see cref="TokenMeterAspNetCoreOptions.AdminPolicy"/>) and <c>/me</c> (any signed-in user); and
    /// the routes of each feature added on the TokenMeter builder: budgets and the users' forecast
    /// (<c>.AddBudgets()</c>), statements (<c>.AddStatements()</c>), sending reports (<c>.AddUsageReports()</c>).
    /// </summary>
    /// <param name="endpoints">The app's route builder.</param>
    /// <param name="prefix">The route prefix, e.g. <c>/api/usage</c>.</param>
    /// <returns>
    /// The group of every route (it requires a signed-in user), so the app can chain conventions
    /// such as rate limits. Routes the app adds to it are not admin-only unless it says so.
    /// </returns>
    public static RouteGroupBuilder MapTokenMeterAdmin(this IEndpointRouteBuilder endpoints, string prefix = "/api/usage")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(prefix);

        var options = endpoints.ServiceProvider.GetService<IOptions<TokenMeterAspNetCoreOptions>>()?.Value ?? new TokenMeterAspNetCoreOptions();
        var group = endpoints.MapGroup(prefix)
            .RequireAuthorization()
            .WithTags(AdminHttp.Tag)
            .AddEndpointFilter<StoreUnavailableFilter>()
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);

        var admin = group.MapGroup(string.Empty);
        if (options.AdminPolicy is { Length: > 0 } policy)
        {
            admin.RequireAuthorization(policy);
        }
        else
        {
            admin.RequireAuthorization(new AuthorizationPolicyBuilder().RequireRole(options.AdminRole).Build());
        }

        // One small file per area; a feature's routes only when the feature was added.
        var features = new AdminFeatures(endpoints.ServiceProvider);
        StatsEndpoints.Map(admin);
        UserEndpoints.Map(admin);
        TrendEndpoints.Map(admin);
        ExportEndpoints.Map(admin);
        ForecastEndpoints.Map(admin, withUsers: features.Budgets);
        if (features.Budgets)
        {
            BudgetEndpoints.Map(admin);
        }

        if (features.Statements)
        {
            StatementEndpoints.Map(admin);
        }

        if (features.Reports)
        {
            ReportEndpoints.Map(admin);
        }

        RepricingEndpoints.Map(admin);
        SelfServiceEndpoints.Map(group);
        return group;
    }
}
