using HomeworkApi.Accounts;
using HomeworkApi.Hosting;
using TokenMeter;
using TokenMeter.AspNetCore;

namespace HomeworkApi.Homework;

/// <summary>
/// Runs first on every homework route: reads and checks the body, and resolves who is charged
/// (CONTRACT §3) — the signed-in user; else the body's <c>userId</c>; else nobody. A body
/// <c>userId</c> naming no account is a 400, a student naming someone else a 403; either way the
/// model is never called. The checked request waits in <see cref="HttpContext.Items"/> for the
/// attribution filter and the handler.
/// </summary>
internal sealed class HomeworkRequestFilter(HomeworkFeature feature) : IEndpointFilter
{
    private static readonly object ItemKey = new();

    public static HomeworkRequest Get(HttpContext context) =>
        context.Items[ItemKey] as HomeworkRequest ?? throw new InvalidOperationException("The homework request filter did not run.");

    public static HomeworkRequest? Find(HttpContext context) => context.Items[ItemKey] as HomeworkRequest;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var signedIn = http.User.Identity?.IsAuthenticated == true;
        if (!signedIn && http.Request.Headers.Authorization.Count > 0)
        {
            return Problems.Unauthorized("The bearer token is invalid or has expired; sign in again, or send the request without an Authorization header.");
        }

        var (body, error) = await Problems.ReadJsonObjectAsync(http.Request, http.RequestAborted);
        if (error is not null)
        {
            return error;
        }

        var (request, invalid) = HomeworkRequestParser.Parse(feature, body);
        if (request is null)
        {
            return Problems.BadRequest(invalid!);
        }

        var tokenUser = signedIn ? http.User.FindFirst("sub")?.Value : null;
        var charged = tokenUser;
        if (request.BodyUserId is { } bodyUser)
        {
            var directory = http.RequestServices.GetRequiredService<IUserDirectory>();
            if (!await directory.ExistsAsync(bodyUser, http.RequestAborted))
            {
                return Problems.BadRequest($"userId '{bodyUser}' names no account.");
            }

            if (tokenUser is not null && !string.Equals(tokenUser, bodyUser, StringComparison.Ordinal))
            {
                if (!http.User.IsInRole(Roles.Admin))
                {
                    return Problems.Forbidden("A student may only charge their own account: leave userId out or set it to your own id.");
                }
            }

            // An admin may act on a student's behalf; an anonymous caller names the user to charge.
            charged = bodyUser;
        }

        request.ChargedUserId = charged;
        http.Items[ItemKey] = request;
        return await next(context);
    }
}
