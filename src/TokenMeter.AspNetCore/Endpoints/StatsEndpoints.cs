using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /stats</c>: platform totals ever, today and this month.</summary>
internal static class StatsEndpoints
{
    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapGet("/stats", GetStatsAsync)
            .WithName("TokenMeterGetStats")
            .WithSummary("Platform totals: ever, today and this month (UTC).")
            .Produces<StatsResponse>(StatusCodes.Status200OK);
    }

    private static async Task<IResult> GetStatsAsync(HttpContext context, IUsageQueries queries, CancellationToken cancellationToken)
    {
        var stats = await queries.GetStatsAsync(AdminHttp.Today(context), cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new StatsResponse(
            stats.TotalCalls,
            stats.TotalTokens,
            stats.TotalCostUsd,
            stats.ActiveUsers,
            PeriodFigures.From(stats.Today),
            PeriodFigures.From(stats.ThisMonth)));
    }
}

internal sealed record StatsResponse(long TotalCalls, long TotalTokens, decimal TotalCostUsd, long ActiveUsers, PeriodFigures Today, PeriodFigures ThisMonth);

internal sealed record PeriodFigures(long Calls, long Tokens, decimal CostUsd, long ActiveUsers)
{
    public static PeriodFigures From(UsagePeriodTotals totals) => new(totals.Calls, totals.Tokens, totals.CostUsd, totals.ActiveUsers);
}

internal sealed record MonthFigures(long Calls, long Tokens, decimal CostUsd)
{
    public static MonthFigures From(UsagePeriodTotals totals) => new(totals.Calls, totals.Tokens, totals.CostUsd);
}
