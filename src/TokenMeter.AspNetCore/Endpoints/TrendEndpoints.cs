using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /endpoint</c>, <c>GET /daily</c> and <c>GET /monthly</c>.</summary>
internal static class TrendEndpoints
{
    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapGet("/endpoint", GetEndpointsAsync)
            .WithName("TokenMeterGetEndpointUsage")
            .WithSummary("All-time usage by endpoint and model, costliest first.")
            .Produces<ItemsResponse<EndpointItem>>(StatusCodes.Status200OK);

        admin.MapGet("/daily", GetDailyAsync)
            .WithName("TokenMeterGetDailyUsage")
            .WithSummary("Usage per UTC day over the last 'days' days (1..366, default 90), newest first.")
            .Produces<ItemsResponse<DailyItem>>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapGet("/monthly", GetMonthlyAsync)
            .WithName("TokenMeterGetMonthlyUsage")
            .WithSummary("Usage per UTC month over the last 'months' months (1..120, default 12), newest first.")
            .Produces<ItemsResponse<MonthlyItem>>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);
    }

    private static async Task<IResult> GetEndpointsAsync(IUsageQueries queries, CancellationToken cancellationToken)
    {
        var rows = await queries.GetEndpointUsageAsync(cancellationToken).ConfigureAwait(false);
        var items = rows
            .OrderByDescending(r => r.CostUsd)
            .Select(r => new EndpointItem(
                r.Endpoint,
                r.Model,
                r.Calls,
                r.TotalTokens,
                r.Calls == 0 ? 0m : Math.Round((decimal)r.TotalTokens / r.Calls, 2),
                r.CostUsd,
                r.Calls == 0 ? 0m : Math.Round(r.CostUsd / r.Calls, 10)))
            .ToList();
        return AdminHttp.Ok(new ItemsResponse<EndpointItem>(items));
    }

    private static async Task<IResult> GetDailyAsync(HttpContext context, IUsageQueries queries, CancellationToken cancellationToken)
    {
        if (!AdminHttp.TryGetInt(context.Request, "days", 90, 1, 366, out var days, out var error))
        {
            return error!;
        }

        var today = AdminHttp.Today(context);
        var rows = await queries.GetDailyUsageAsync(today.AddDays(1 - days), today, cancellationToken).ConfigureAwait(false);
        var items = rows
            .OrderByDescending(r => r.Period)
            .Select(r => new DailyItem(r.Period, r.Calls, r.InputTokens, r.OutputTokens, r.TotalTokens, r.CostUsd, r.ActiveUsers))
            .ToList();
        return AdminHttp.Ok(new ItemsResponse<DailyItem>(items));
    }

    private static async Task<IResult> GetMonthlyAsync(HttpContext context, IUsageQueries queries, CancellationToken cancellationToken)
    {
        if (!AdminHttp.TryGetInt(context.Request, "months", 12, 1, 120, out var months, out var error))
        {
            return error!;
        }

        var today = AdminHttp.Today(context);
        var thisMonth = new DateOnly(today.Year, today.Month, 1);
        var rows = await queries.GetMonthlyUsageAsync(thisMonth.AddMonths(1 - months), today, cancellationToken).ConfigureAwait(false);
        var items = rows
            .OrderByDescending(r => r.Period)
            .Select(r => new MonthlyItem(
                r.Period.ToString("yyyy-MM", CultureInfo.InvariantCulture), r.Calls, r.InputTokens, r.OutputTokens, r.TotalTokens, r.CostUsd, r.ActiveUsers))
            .ToList();
        return AdminHttp.Ok(new ItemsResponse<MonthlyItem>(items));
    }
}

internal sealed record ItemsResponse<T>(IReadOnlyList<T> Items);

internal sealed record EndpointItem(string? Endpoint, string? Model, long Calls, long TotalTokens, decimal AvgTokensPerCall, decimal TotalCostUsd, decimal AvgCostPerCall);

internal sealed record DailyItem(DateOnly Date, long Calls, long InputTokens, long OutputTokens, long TotalTokens, decimal CostUsd, long ActiveUsers);

internal sealed record MonthlyItem(string Month, long Calls, long InputTokens, long OutputTokens, long TotalTokens, decimal CostUsd, long ActiveUsers);
