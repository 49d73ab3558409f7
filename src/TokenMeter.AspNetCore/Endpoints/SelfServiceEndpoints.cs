using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.Budgets;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /me</c>: the signed-in user's own usage and budget.</summary>
internal static class SelfServiceEndpoints
{
    public static void Map(IEndpointRouteBuilder signedIn)
    {
        signedIn.MapGet("/me", GetMeAsync)
            .WithName("TokenMeterGetMyUsage")
            .WithSummary("The signed-in user's own usage, this month's figures and remaining budget.")
            .Produces<MeResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status403Forbidden);
    }

    private static async Task<IResult> GetMeAsync(
        HttpContext context, IUsageQueries queries, IOptions<TokenMeterAspNetCoreOptions> options, CancellationToken cancellationToken)
    {
        var userId = options.Value.GetUserId(context.User);
        if (userId is null)
        {
            return TypedResults.Problem(
                detail: "The signed-in user has no user id claim.", statusCode: StatusCodes.Status403Forbidden, title: "No user id");
        }

        var detail = await queries.GetUserUsageAsync(userId, AdminHttp.Today(context), cancellationToken).ConfigureAwait(false);
        var budget = await GetBudgetAsync(context, userId, detail?.ThisMonth.CostUsd ?? 0m, cancellationToken).ConfigureAwait(false);
        var byEndpoint = (detail?.ByEndpoint ?? [])
            .GroupBy(e => e.Endpoint, StringComparer.Ordinal)
            .Select(g => new MyEndpointItem(g.Key, UsageFigures.Sum(g.Select(e => e.Figures))))
            .OrderByDescending(e => e.Figures.CostUsd)
            .ToList();
        return AdminHttp.Ok(new MeResponse(
            detail?.Summary.Figures ?? UsageFigures.Zero,
            detail?.ThisMonth ?? UsageFigures.Zero,
            budget,
            detail?.Daily ?? [],
            byEndpoint));
    }

    private static async Task<MyBudget?> GetBudgetAsync(HttpContext context, string userId, decimal storedMonthCost, CancellationToken cancellationToken)
    {
        var guard = context.RequestServices.GetService<BudgetGuard>();
        if (guard is not null)
        {
            var status = await guard.GetStatusAsync(userId, cancellationToken).ConfigureAwait(false);
            return status.Limit is null ? null : new MyBudget(status.Limit.MonthlyCostUsd, status.RemainingCostUsd, status.Limit.MonthlyTokens);
        }

        var store = AdminFeatures.BudgetStore(context.RequestServices);
        var limit = store is null ? null : await store.GetEffectiveBudgetAsync(userId, cancellationToken).ConfigureAwait(false);
        if (limit is not { HasLimit: true })
        {
            return null;
        }

        return new MyBudget(limit.MonthlyCostUsd, limit.MonthlyCostUsd is { } max ? Math.Max(0m, max - storedMonthCost) : null, limit.MonthlyTokens);
    }
}

internal sealed record MyBudget(decimal? MonthlyCostUsd, decimal? RemainingUsd, long? MonthlyTokens);

/// <summary>The user's figures for one endpoint, every model together.</summary>
internal sealed record MyEndpointItem(string? Endpoint, UsageFigures Figures);

internal sealed record MeResponse(
    UsageFigures Figures,
    UsageFigures ThisMonth,
    MyBudget? Budget,
    IReadOnlyList<UserDailyUsage> Daily,
    IReadOnlyList<MyEndpointItem> ByEndpoint);
