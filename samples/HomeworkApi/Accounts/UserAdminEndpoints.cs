using HomeworkApi.Hosting;

namespace HomeworkApi.Accounts;

/// <summary>The portal's "Users" tab: a page of accounts, change an account's role, delete an account (admin only).</summary>
internal static class UserAdminEndpoints
{
    public static void MapUserAdminEndpoints(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup(string.Empty)
            .WithTags("Accounts")
            .RequireAuthorization(policy => policy.RequireRole(Roles.Admin))
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        admin.MapGet("/api/users", ListAsync)
            .WithSummary("Lists accounts, ordered by id (admin only).")
            .Produces<UserListResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest);
        admin.MapPut("/api/users/{id}/role", SetRoleAsync)
            .WithSummary("Sets an account's role, student or admin (admin only); applies to its tokens within seconds.")
            .WithJsonBody<RoleRequest>()   // documents the body without a routing Content-Type check: a non-JSON body gets the 400 sentence, not a bare 415
            .Produces<UserDto>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        admin.MapDelete("/api/users/{id}", DeleteAsync)
            .WithSummary("Deletes an account (admin only); its usage records keep the id, its tokens stop working.")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
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
            return Problems.BadRequest("limit must be between 1 and 500.");
        }

        if (skip < 0)
        {
            return Problems.BadRequest("offset must be 0 or more.");
        }

        var page = await store.ListAsync(pageSize, skip, string.IsNullOrWhiteSpace(search) ? null : search.Trim(), cancellationToken);
        return TypedResults.Ok(new UserListResponse(
            page.Items.Select(a => new UserListItem(a.IdText, a.Username, a.Email, a.Role, a.CreatedAt)).ToList(),
            page.Total,
            pageSize,
            skip));
    }

    private static async Task<IResult> SetRoleAsync(string id, HttpContext context, IAccountStore store, AccountRoleResolver roles, CancellationToken cancellationToken)
    {
        var (body, error) = await Problems.ReadJsonObjectAsync(context.Request, cancellationToken);
        if (error is not null)
        {
            return error;
        }

        var role = Problems.RequiredString(body, "role", out var roleError);
        if (roleError is not null || role is not (Roles.Student or Roles.Admin))
        {
            return Problems.BadRequest(roleError ?? "role must be 'student' or 'admin'.");
        }

        var (account, problem) = await FindOtherAccountAsync(id, context, store, "change your own role", cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var updated = account! with { Role = role };
        await store.UpdateAsync(updated, cancellationToken);
        roles.Forget(updated.Id);
        return TypedResults.Ok(UserDto.From(updated));
    }

    private static async Task<IResult> DeleteAsync(string id, HttpContext context, IAccountStore store, AccountRoleResolver roles, CancellationToken cancellationToken)
    {
        var (account, problem) = await FindOtherAccountAsync(id, context, store, "delete your own account", cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        await store.DeleteAsync(account!.Id, cancellationToken);
        roles.Forget(account.Id);
        return TypedResults.NoContent();
    }

    /// <summary>
    /// The account named by <paramref name="id"/>, or the problem to answer: 404 when there is none, 409
    /// when it is the caller's own (so the last admin can never lock everyone out).
    /// </summary>
    private static async Task<(Account? Account, IResult? Problem)> FindOtherAccountAsync(string id, HttpContext context, IAccountStore store, string what, CancellationToken cancellationToken)
    {
        if (!AccountUserDirectory.TryParseId(id, out var accountId) || await store.FindByIdAsync(accountId, cancellationToken) is not { } account)
        {
            return (null, Problems.NotFound($"No account has the id '{(id.Length > 40 ? id[..40] + "…" : id)}'."));
        }

        if (string.Equals(context.User.FindFirst("sub")?.Value, account.IdText, StringComparison.Ordinal))
        {
            return (null, TypedResults.Problem(
                detail: $"You cannot {what}: ask another admin, so that an admin always remains.",
                statusCode: StatusCodes.Status409Conflict,
                title: "Not allowed on your own account."));
        }

        return (account, null);
    }

    private static async Task<IResult> GetMeAsync(HttpContext context, IAccountStore store, CancellationToken cancellationToken)
    {
        var sub = context.User.FindFirst("sub")?.Value;
        if (!AccountUserDirectory.TryParseId(sub, out var id) || await store.FindByIdAsync(id, cancellationToken) is not { } account)
        {
            return Problems.Unauthorized("The token names no account.");
        }

        return TypedResults.Ok(UserDto.From(account));
    }
}

/// <summary>The body of <c>PUT /api/users/{id}/role</c>.</summary>
internal sealed record RoleRequest(string Role);

/// <summary>One account in the Users tab.</summary>
internal sealed record UserListItem(string Id, string Username, string Email, string Role, DateTimeOffset CreatedAt);

/// <summary>A page of accounts.</summary>
internal sealed record UserListResponse(IReadOnlyList<UserListItem> Items, long Total, int Limit, int Offset);
