using HomeworkApi.Accounts;
using HomeworkApi.Hosting;
using TokenMeter;
using TokenMeter.AspNetCore;

namespace HomeworkApi.Homework;

/// <summary>
/// Runs first on every homework route: reads and checks the body, and resolves who is charged
/// — the signed-in user, or the student an admin names with the body's <c>userId</c>; with no
/// token, nobody. A body <c>userId</c> without a token is a 401, a student naming someone else a
/// 403, an admin naming no account a 400; in each case the model is never called. The checked request waits in <see cref="HttpContext.Items"/> for the
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
            if (tokenUser is null)
            {
                // Nobody may spend a student's budget by naming them: charging a named user needs a token.
                return Problems.Unauthorized("Sign in to name the user to charge: a request without a bearer token may not carry userId (leave it out for an anonymous call).");
            }

            if (!string.Equals(tokenUser, bodyUser, StringComparison.Ordinal))
            {
                if (!http.User.IsInRole(Roles.Admin))
                {
                    return Problems.Forbidden("A student may only charge their own account: leave userId out or set it to your own id.");
                }

                // An admin (a backend acting for a student) names the student to charge.
                var directory = http.RequestServices.GetRequiredService<IUserDirectory>();
                if (!await directory.ExistsAsync(bodyUser, http.RequestAborted))
                {
                    return Problems.BadRequest($"userId '{bodyUser}' names no account.");
                }
            }

            charged = bodyUser;
        }

        request.ChargedUserId = charged;
        http.Items[ItemKey] = request;
        return await next(context);
    }
}
