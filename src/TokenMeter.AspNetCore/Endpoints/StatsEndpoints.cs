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
            .Produces<UsageStats>(StatusCodes.Status200OK);
    }

    private static async Task<IResult> GetStatsAsync(HttpContext context, IUsageQueries queries, CancellationToken cancellationToken)
    {
        var stats = await queries.GetStatsAsync(AdminHttp.Today(context), cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(stats);
    }
}
