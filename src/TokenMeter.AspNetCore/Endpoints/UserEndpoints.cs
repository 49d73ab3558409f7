using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Pricing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /summary</c> (paged per-user totals) and <c>GET /user/{userId}</c> (one user's detail).</summary>
internal static class UserEndpoints
{
    private static readonly Dictionary<string, UserSummarySort> SortKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        ["cost"] = UserSummarySort.Cost,
        ["tokens"] = UserSummarySort.Tokens,
        ["calls"] = UserSummarySort.Calls,
        ["lastCall"] = UserSummarySort.LastCall,
        ["userId"] = UserSummarySort.UserId,
    };

    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapGet("/summary", GetSummaryAsync)
            .WithName("TokenMeterGetUserSummaries")
            .WithSummary("Per-user totals, one page at a time (limit 1..500, offset >= 0, sort cost|tokens|calls|lastCall|userId, order asc|desc).")
            .WithQuery(static (
                [Description("Rows per page.")][Range(1, 500)] int limit = 50,
                [Description("Rows to skip.")][Range(0, int.MaxValue)] int offset = 0,
                [Description("Sort key: cost, tokens, calls, lastCall or userId (default cost).")] string? sort = null,
                [Description("asc or desc (default desc).")] string? order = null) => { })
            .Produces<SummaryPageResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapGet("/user/{userId}", GetUserAsync)
            .WithName("TokenMeterGetUserUsage")
            .WithSummary("One user's usage: totals, this month, by endpoint and model, and the last 30 days with calls.")
            .Produces<UserDetailResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<IResult> GetSummaryAsync(HttpContext context, IUsageQueries queries, CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (!AdminHttp.TryGetInt(request, "limit", 50, 1, 500, out var limit, out var error)
            || !AdminHttp.TryGetInt(request, "offset", 0, 0, int.MaxValue, out var offset, out error)
            || !AdminHttp.TryGetSingle(request, "sort", out var sortText, out error)
            || !AdminHttp.TryGetSingle(request, "order", out var orderText, out error))
        {
            return error!;
        }

        var sort = UserSummarySort.Cost;
        if (sortText is not null && !SortKeys.TryGetValue(sortText, out sort))
        {
            return AdminHttp.BadParameter("sort", "'sort' must be one of cost, tokens, calls, lastCall, userId.");
        }

        SortOrder order;
        if (orderText is null || orderText.Equals("desc", StringComparison.OrdinalIgnoreCase))
        {
            order = SortOrder.Descending;
        }
        else if (orderText.Equals("asc", StringComparison.OrdinalIgnoreCase))
        {
            order = SortOrder.Ascending;
        }
        else
        {
            return AdminHttp.BadParameter("order", "'order' must be asc or desc.");
        }

        var page = await queries.GetUserSummariesAsync(new UserSummaryQuery(sort, order, limit, offset), cancellationToken).ConfigureAwait(false);
        var users = await AdminHttp.LookUpUsersAsync(context, page.Items.Select(i => i.UserId), cancellationToken).ConfigureAwait(false);
        var items = page.Items.Select(s =>
        {
            users.TryGetValue(s.UserId, out var user);
            return new UserSummaryItem(s.UserId, user?.Username, user?.Email, s.Figures, s.LastCallAt);
        }).ToList();
        return AdminHttp.Ok(new SummaryPageResponse(items, page.Total, limit, offset));
    }

    private static async Task<IResult> GetUserAsync(string userId, HttpContext context, IUsageQueries queries, CancellationToken cancellationToken)
    {
        if (!AdminHttp.IsValidUserId(userId))
        {
            return AdminHttp.BadParameter("userId", "'userId' must be a non-blank id of at most 256 characters.");
        }

        var detail = await queries.GetUserUsageAsync(userId, AdminHttp.Today(context), cancellationToken).ConfigureAwait(false);
        var directory = context.RequestServices.GetService<IUserDirectory>();
        UserDirectoryEntry? user = null;
        if (directory is not null)
        {
            var found = await directory.GetUsersAsync([userId], cancellationToken).ConfigureAwait(false);
            found.TryGetValue(userId, out user);
            if (user is null && detail is null && !await directory.ExistsAsync(userId, cancellationToken).ConfigureAwait(false))
            {
                return AdminHttp.NotFound($"User '{userId}' has no account and no recorded usage.");
            }
        }
        else if (detail is null)
        {
            return AdminHttp.NotFound($"User '{userId}' has no recorded usage.");
        }

        return AdminHttp.Ok(new UserDetailResponse(
            userId,
            user?.Username,
            user?.Email,
            detail?.Summary.Figures ?? UsageFigures.Zero,
            detail?.Summary.LastCallAt,
            detail?.ThisMonth ?? UsageFigures.Zero,
            detail?.ByEndpoint ?? [],
            detail?.Daily ?? [],
            [.. (detail?.ThisMonthByCostSource ?? []).Select(u => new CostSourceItem(CostSourceNames.Of(u.CostSource), u.Calls, u.CostUsd))]));
    }
}

/// <summary>A user's summary with the directory's name and email.</summary>
internal sealed record UserSummaryItem(string UserId, string? Username, string? Email, UsageFigures Figures, DateTimeOffset? LastCallAt);

internal sealed record SummaryPageResponse(IReadOnlyList<UserSummaryItem> Items, long Total, int Limit, int Offset);

/// <summary>A user's detail with the directory's name and email (zeros for an account with no usage).</summary>
internal sealed record UserDetailResponse(
    string UserId,
    string? Username,
    string? Email,
    UsageFigures Figures,
    DateTimeOffset? LastCallAt,
    UsageFigures ThisMonth,
    IReadOnlyList<UserEndpointUsage> ByEndpoint,
    IReadOnlyList<UserDailyUsage> Daily,
    IReadOnlyList<CostSourceItem> ThisMonthByCostSource);

/// <summary>This month's calls and cost of one cost source: <c>reported</c>, <c>estimated</c> or <c>unpriced</c>.</summary>
internal sealed record CostSourceItem(string CostSource, long Calls, decimal CostUsd);
