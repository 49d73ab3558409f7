using System.Text.Json;
using TokenMeter.AspNetCore.RateLimits;

namespace HomeworkApi.Hosting;

/// <summary>RFC 9457 problem details with a human sentence in <c>detail</c>.</summary>
internal static class Problems
{
    public const string NotJsonContentType = "The body must be JSON (Content-Type: application/json).";
    public const string NotJson = "The body is not valid JSON.";
    public const string NotAnObject = "The body must be a JSON object.";

    public static IResult BadRequest(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status400BadRequest, title: "The request is not valid.");

    public static IResult Unauthorized(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status401Unauthorized, title: "Not signed in.");

    public static IResult Forbidden(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status403Forbidden, title: "Not allowed.");

    public static IResult Conflict(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status409Conflict, title: "Already taken.");

    public static IResult TooManyRequests(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests.", type: RateLimitProblemTypes.RateLimited);

    public static IResult NotFound(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status404NotFound, title: "Not found.");

    public static IResult BadGateway(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status502BadGateway, title: "The model endpoint failed.");

    /// <summary>
    /// Completes every problem details answer, the framework's own included (the empty 401 of a missing
    /// token, the 403 of a student on an admin route, a 404, a 413): a <c>type</c>, a <c>title</c> and a
    /// <c>detail</c> sentence are always there.
    /// </summary>
    public static void Complete(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var status = problem.Status ?? context.HttpContext.Response.StatusCode;
        problem.Type ??= status switch
        {
            StatusCodes.Status413PayloadTooLarge => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
            StatusCodes.Status429TooManyRequests => RateLimitProblemTypes.RateLimited,
            _ => "about:blank",
        };
        problem.Title ??= Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);
        problem.Detail ??= status switch
        {
            StatusCodes.Status400BadRequest => "The request is not valid.",
            StatusCodes.Status401Unauthorized => "Sign in first: send a valid, unexpired bearer token (Authorization: Bearer, from POST /api/auth/login).",
            StatusCodes.Status403Forbidden => "Your account may not use this route: it needs the admin role.",
            StatusCodes.Status404NotFound => "Nothing is found at this address.",
            StatusCodes.Status405MethodNotAllowed => $"This route does not accept {context.HttpContext.Request.Method} requests.",
            StatusCodes.Status413PayloadTooLarge => "The request body is over the size limit.",
            StatusCodes.Status415UnsupportedMediaType => "The body's Content-Type is not one this route reads.",
            >= 500 => "The server failed to answer; the failure has been logged.",
            _ => problem.Title,
        };
    }

    /// <summary>Reads the body as one JSON object, or says in a sentence why it is not one.</summary>
    public static async ValueTask<(JsonElement Body, IResult? Error)> ReadJsonObjectAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentType is not { } type || !type.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            return (default, BadRequest(NotJsonContentType));
        }

        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, default, cancellationToken);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (default, BadRequest(NotAnObject));
            }

            return (document.RootElement.Clone(), null);
        }
        catch (JsonException)
        {
            return (default, BadRequest(NotJson));
        }
    }

    /// <summary>A required string property; null with the sentence to return when it is missing or not a string.</summary>
    public static string? RequiredString(JsonElement body, string name, out string? error)
    {
        error = null;
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            error = $"{name} is required.";
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            error = $"{name} must be a string.";
            return null;
        }

        var text = value.GetString()!;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = $"{name} must not be empty.";
            return null;
        }

        return text;
    }
}
