using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /forecast</c> (the platform's month) and <c>GET /forecast/users</c> (users heading past their budget).</summary>
internal static class ForecastEndpoints
{
    public static void Map(IEndpointRouteBuilder admin, bool withUsers)
    {
        admin.MapGet("/forecast", GetForecastAsync)
            .WithName("TokenMeterGetForecast")
            .WithSummary("The platform's cost this UTC month, projected to its end with an 80% interval.")
            .Produces<ForecastResponse>(StatusCodes.Status200OK);

        if (!withUsers)
        {
            return;
        }

        admin.MapGet("/forecast/users", GetUserForecastsAsync)
            .WithName("TokenMeterGetUserForecasts")
            .WithSummary("Users whose projected month reaches their monthly cost budget, soonest first ('limit' 1..500, default 50).")
            .WithQuery(static ([Description("Rows per page.")][Range(1, 500)] int limit = 50) => { })
            .Produces<UserForecastsResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);
    }

    internal static UsageForecaster Forecaster(HttpContext context)
        => new(
            context.RequestServices.GetRequiredService<IUsageQueries>(),
            AdminFeatures.BudgetStore(context.RequestServices),
            AdminHttp.Time(context));

    private static async Task<IResult> GetForecastAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var forecast = await Forecaster(context).ForecastMonthAsync(cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(ForecastResponse.From(forecast));
    }

    private static async Task<IResult> GetUserForecastsAsync(HttpContext context, CancellationToken cancellationToken)
    {
        if (!AdminHttp.TryGetInt(context.Request, "limit", 50, 1, 500, out var limit, out var error))
        {
            return error!;
        }

        var forecasts = await Forecaster(context).ForecastUsersAsync(limit, cancellationToken).ConfigureAwait(false);
        var users = await AdminHttp.LookUpUsersAsync(context, forecasts.Select(f => f.UserId), cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new UserForecastsResponse(forecasts
            .Select(f => new UserForecastItem(
                f.UserId,
                users.GetValueOrDefault(f.UserId)?.Username,
                f.MonthToDateCostUsd,
                f.ProjectedMonthCostUsd,
                f.MonthlyCostUsd,
                f.ProjectedExhaustionDate?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)))
            .ToList()));
    }
}

internal sealed record ForecastResponse(
    string Month,
    DateTimeOffset AsOf,
    decimal MonthToDateCostUsd,
    decimal ProjectedMonthCostUsd,
    decimal ProjectedLowUsd,
    decimal ProjectedHighUsd,
    string Method,
    int HistoryDays)
{
    public static ForecastResponse From(CostForecast f) => new(
        f.Month.ToString("yyyy-MM", CultureInfo.InvariantCulture),
        f.AsOf,
        f.MonthToDateCostUsd,
        f.ProjectedMonthCostUsd,
        f.ProjectedLowUsd,
        f.ProjectedHighUsd,
        f.Method,
        f.HistoryDays);
}

internal sealed record UserForecastsResponse(IReadOnlyList<UserForecastItem> Items);

internal sealed record UserForecastItem(
    string UserId,
    string? Username,
    decimal MonthToDateCostUsd,
    decimal ProjectedMonthCostUsd,
    decimal MonthlyCostUsd,
    string? ProjectedExhaustionDate);
