using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /budgets</c>, <c>PUT /budgets/default</c>, <c>PUT /budgets/{userId}</c>, <c>DELETE /budgets/{userId}</c>.</summary>
internal static class BudgetEndpoints
{
    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapGet("/budgets", GetBudgetsAsync)
            .WithName("TokenMeterGetBudgets")
            .WithSummary("The default monthly limits and every per-user override.")
            .Produces<BudgetsResponse>(StatusCodes.Status200OK);

        admin.MapPut("/budgets/default", PutDefaultAsync)
            .WithName("TokenMeterSetDefaultBudget")
            .WithSummary("Sets the default monthly limits; a null limit lifts it.")
            .Accepts<BudgetRequest>("application/json")
            .Produces<BudgetLimitItem>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapPut("/budgets/{userId}", PutUserAsync)
            .WithName("TokenMeterSetUserBudget")
            .WithSummary("Sets a user's monthly limits, overriding the default; a null limit lifts it for that user.")
            .Accepts<BudgetRequest>("application/json")
            .Produces<UserBudgetItem>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);

        admin.MapDelete("/budgets/{userId}", DeleteUserAsync)
            .WithName("TokenMeterDeleteUserBudget")
            .WithSummary("Removes a user's override, so the default applies again.")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> GetBudgetsAsync(IBudgetStore store, CancellationToken cancellationToken)
    {
        var settings = await store.GetBudgetsAsync(cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new BudgetsResponse(
            settings.Default is { HasLimit: true } d ? new BudgetLimitItem(d.MonthlyCostUsd, d.MonthlyTokens) : null,
            settings.Users.Select(u => new UserBudgetItem(u.UserId, u.MonthlyCostUsd, u.MonthlyTokens)).ToList()));
    }

    private static async Task<IResult> PutDefaultAsync(HttpContext context, IBudgetStore store, CancellationToken cancellationToken)
    {
        var (limit, error) = await ReadLimitAsync(context.Request, cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        await store.SetDefaultBudgetAsync(limit!.HasLimit ? limit : null, cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new BudgetLimitItem(limit.MonthlyCostUsd, limit.MonthlyTokens));
    }

    private static async Task<IResult> PutUserAsync(string userId, HttpContext context, IBudgetStore store, CancellationToken cancellationToken)
    {
        if (!AdminHttp.IsValidUserId(userId))
        {
            return AdminHttp.BadParameter("userId", "'userId' must be a non-blank id of at most 256 characters.");
        }

        var (limit, error) = await ReadLimitAsync(context.Request, cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        // With a user directory, a limit for an id that names no account is refused (a typo, or an injection attempt).
        if (context.RequestServices.GetService<IUserDirectory>() is { } directory
            && !await directory.ExistsAsync(userId, cancellationToken).ConfigureAwait(false))
        {
            return AdminHttp.NotFound($"No account has the user id '{(userId.Length > 40 ? userId[..40] + "…" : userId)}'.");
        }

        await store.SetUserBudgetAsync(new UserBudget(userId, limit!.MonthlyCostUsd, limit.MonthlyTokens), cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new UserBudgetItem(userId, limit.MonthlyCostUsd, limit.MonthlyTokens));
    }

    private static async Task<IResult> DeleteUserAsync(string userId, IBudgetStore store, CancellationToken cancellationToken)
    {
        if (!AdminHttp.IsValidUserId(userId))
        {
            return AdminHttp.BadParameter("userId", "'userId' must be a non-blank id of at most 256 characters.");
        }

        return await store.DeleteUserBudgetAsync(userId, cancellationToken).ConfigureAwait(false)
            ? TypedResults.NoContent()
            : AdminHttp.NotFound($"User '{userId}' has no budget of their own.");
    }

    /// <summary>Reads <c>{monthlyCostUsd?, monthlyTokens?}</c>, naming the offending field on error.</summary>
    private static async Task<(BudgetLimit? Limit, IResult? Error)> ReadLimitAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            return (null, AdminHttp.BadParameter("body", "'body' must be a JSON object {monthlyCostUsd?, monthlyTokens?}."));
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, AdminHttp.BadParameter("body", "'body' must be a JSON object {monthlyCostUsd?, monthlyTokens?}."));
            }

            decimal? cost = null;
            long? tokens = null;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                var value = property.Value;
                if (property.NameEquals("monthlyCostUsd"))
                {
                    if (value.ValueKind == JsonValueKind.Null)
                    {
                        continue;
                    }

                    if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out var c) || c < 0)
                    {
                        return (null, AdminHttp.BadParameter("monthlyCostUsd", "'monthlyCostUsd' must be a non-negative number or null."));
                    }

                    cost = c;
                }
                else if (property.NameEquals("monthlyTokens"))
                {
                    if (value.ValueKind == JsonValueKind.Null)
                    {
                        continue;
                    }

                    if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var t) || t < 0)
                    {
                        return (null, AdminHttp.BadParameter("monthlyTokens", "'monthlyTokens' must be a non-negative integer or null."));
                    }

                    tokens = t;
                }
            }

            return (new BudgetLimit(cost, tokens), null);
        }
    }
}

/// <summary>Body of the budget PUT routes.</summary>
internal sealed record BudgetRequest(decimal? MonthlyCostUsd, long? MonthlyTokens);

internal sealed record BudgetLimitItem(decimal? MonthlyCostUsd, long? MonthlyTokens);

internal sealed record UserBudgetItem(string UserId, decimal? MonthlyCostUsd, long? MonthlyTokens);

internal sealed record BudgetsResponse(BudgetLimitItem? Default, IReadOnlyList<UserBudgetItem> Users);
