using System.ComponentModel.DataAnnotations;
using HomeworkApi.Accounts;
using HomeworkApi.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Validation;
using TokenMeter;
using TokenMeter.AspNetCore;

namespace HomeworkApi.Homework;

/// <summary>
/// Runs first on every homework route: checks the bound body, and resolves who is charged
/// — the signed-in user, or the student an admin names with the body's <c>userId</c>; with no
/// token, nobody. A body <c>userId</c> without a token is a 401, a student naming someone else a
/// 403, an admin naming no account a 400; in each case the model is never called. The checked request waits in <see cref="HttpContext.Items"/> for the
/// attribution filter and the handler.
/// </summary>
internal sealed class HomeworkRequestFilter(HomeworkFeature feature) : IEndpointFilter
{
    private static readonly object ItemKey = new();

    /// <summary>The fields in the order their faults are reported (one sentence per answer: the first fault).</summary>
    private static readonly string[] FieldOrder =
    [
        nameof(HomeworkBody.UserId), nameof(HomeworkBody.GradeLevel), nameof(HomeworkBody.Subject), nameof(HomeworkBody.SessionId),
        nameof(HomeworkBody.ProblemId), nameof(HomeworkBody.Metadata), nameof(HintBody.ProblemText), nameof(ImageBody.Image),
        nameof(VerifyBody.Answer), nameof(HintBody.PreviousHints), nameof(ChatBody.Messages), nameof(ChatBody.ProblemContext),
    ];

    private ValidationOptions? _validation;

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

        var body = FindBody(context);
        if (body.ReadError is { } unreadable)
        {
            return Problems.BadRequest(unreadable);
        }

        if (await ValidateAsync(body, http) is { } invalid)
        {
            return Problems.BadRequest(invalid);
        }

        var request = HomeworkRequest.From(feature, body);
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

    private static HomeworkBody FindBody(EndpointFilterInvocationContext context)
    {
        foreach (var argument in context.Arguments)
        {
            if (argument is HomeworkBody body)
            {
                return body;
            }
        }

        throw new InvalidOperationException("A homework route must bind a homework body.");
    }

    /// <summary>
    /// Checks the body with the app's minimal-API validation (<c>AddValidation</c>: the records' attributes
    /// and <see cref="IValidatableObject"/>), here rather than in the framework's own filter so that a bad
    /// token is answered first and the answer is one sentence, the first fault in <see cref="FieldOrder"/>.
    /// </summary>
    private async ValueTask<string?> ValidateAsync(HomeworkBody body, HttpContext http)
    {
        _validation ??= http.RequestServices.GetRequiredService<IOptions<ValidationOptions>>().Value;
        if (!_validation.TryGetValidatableTypeInfo(body.GetType(), out var info))
        {
            throw new InvalidOperationException($"{body.GetType().Name} is not registered for validation.");
        }

        var context = new ValidateContext { ValidationOptions = _validation, ValidationContext = new ValidationContext(body, http.RequestServices, null) };
        await info.ValidateAsync(body, context, http.RequestAborted);
        if (context.ValidationErrors is not { Count: > 0 } errors)
        {
            return null;
        }

        var first = errors.MinBy(e => Rank(e.Key));
        return first.Value[0];
    }

    private static int Rank(string key)
    {
        var end = key.AsSpan().IndexOfAny('.', '[');
        var name = end < 0 ? key.AsSpan() : key.AsSpan(0, end);
        for (var i = 0; i < FieldOrder.Length; i++)
        {
            if (name.Equals(FieldOrder[i], StringComparison.OrdinalIgnoreCase))
            {
                return i;
            }
        }

        return FieldOrder.Length;
    }
}
