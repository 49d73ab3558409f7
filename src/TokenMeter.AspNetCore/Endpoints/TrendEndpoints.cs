using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
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
            .Produces<ItemsResponse<EndpointUsage>>(StatusCodes.Status200OK);

        admin.MapGet("/daily", GetDailyAsync)
            .WithName("TokenMeterGetDailyUsage")
            .WithSummary("Usage per UTC day over the last 'days' days (1..366, default 90), newest first.")
            .WithQuery(static ([Description("Days back from today (UTC), today included.")][Range(1, 366)] int days = 90) => { })
            .Produces<ItemsResponse<DailyItem>>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapGet("/monthly", GetMonthlyAsync)
            .WithName("TokenMeterGetMonthlyUsage")
            .WithSummary("Usage per UTC month over the last 'months' months (1..120, default 12), newest first.")
            .WithQuery(static ([Description("Months back from this month (UTC), this month included.")][Range(1, 120)] int months = 12) => { })
            .Produces<ItemsResponse<MonthlyItem>>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);
    }

    private static async Task<IResult> GetEndpointsAsync(IUsageQueries queries, CancellationToken cancellationToken)
    {
        var rows = await queries.GetEndpointUsageAsync(cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new ItemsResponse<EndpointUsage>([.. rows.OrderByDescending(r => r.Figures.CostUsd)]));
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
            .Select(r => new DailyItem(r.Period, r.Figures, r.ActiveUsers))
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
            .Select(r => new MonthlyItem(r.Period.ToString("yyyy-MM", CultureInfo.InvariantCulture), r.Figures, r.ActiveUsers))
            .ToList();
        return AdminHttp.Ok(new ItemsResponse<MonthlyItem>(items));
    }
}

internal sealed record ItemsResponse<T>(IReadOnlyList<T> Items);

internal sealed record DailyItem(DateOnly Date, UsageFigures Figures, long ActiveUsers);

internal sealed record MonthlyItem(string Month, UsageFigures Figures, long ActiveUsers);
