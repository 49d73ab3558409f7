namespace HomeworkApi.Accounts;

/// <summary>The portal's "Users" tab: a page of accounts (admin only).</summary>
internal static class UserAdminEndpoints
{
    public static void MapUserAdminEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/users", ListAsync)
            .WithTags("Accounts")
            .WithSummary("Lists accounts, ordered by id (admin only).")
            .RequireAuthorization(policy => policy.RequireRole(Roles.Admin))
            .Produces<UserListResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest);
        app.MapGet("/api/auth/me", GetMeAsync)
            .WithTags("Accounts")
            .WithSummary("The signed-in account.")
            .RequireAuthorization()
            .Produces<UserDto>();
    }

    private static async Task<IResult> ListAsync(IAccountStore store, int? limit, int? offset, string? search, CancellationToken cancellationToken)
    {
        var pageSize = limit ?? 50;
        var skip = offset ?? 0;
        if (pageSize is < 1 or > 500)
        {
            return Hosting.Problems.BadRequest("limit must be between 1 and 500.");
        }

        if (skip < 0)
        {
            return Hosting.Problems.BadRequest("offset must be 0 or more.");
        }

        var page = await store.ListAsync(pageSize, skip, string.IsNullOrWhiteSpace(search) ? null : search.Trim(), cancellationToken);
        return TypedResults.Ok(new UserListResponse(
            page.Items.Select(a => new UserListItem(a.IdText, a.Username, a.Email, a.Role, a.CreatedAt)).ToList(),
            page.Total,
            pageSize,
            skip));
    }

    private static async Task<IResult> GetMeAsync(HttpContext context, IAccountStore store, CancellationToken cancellationToken)
    {
        var sub = context.User.FindFirst("sub")?.Value;
        if (!AccountUserDirectory.TryParseId(sub, out var id) || await store.FindByIdAsync(id, cancellationToken) is not { } account)
        {
            return Hosting.Problems.Unauthorized("The token names no account.");
        }

        return TypedResults.Ok(UserDto.From(account));
    }
}

/// <summary>One account in the Users tab.</summary>
internal sealed record UserListItem(string Id, string Username, string Email, string Role, DateTimeOffset CreatedAt);

/// <summary>A page of accounts.</summary>
internal sealed record UserListResponse(IReadOnlyList<UserListItem> Items, long Total, int Limit, int Offset);
