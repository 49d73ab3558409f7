using System.Text.Json;

namespace HomeworkApi.Hosting;

/// <summary>RFC 9457 problem details with a human sentence in <c>detail</c>.</summary>
internal static class Problems
{
    public static IResult BadRequest(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status400BadRequest, title: "The request is not valid.");

    public static IResult Unauthorized(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status401Unauthorized, title: "Not signed in.");

    public static IResult Forbidden(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status403Forbidden, title: "Not allowed.");

    public static IResult Conflict(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status409Conflict, title: "Already taken.");

    public static IResult TooManyRequests(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests.");

    public static IResult BadGateway(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status502BadGateway, title: "The model endpoint failed.");

    /// <summary>Reads the body as one JSON object, or says in a sentence why it is not one.</summary>
    public static async ValueTask<(JsonElement Body, IResult? Error)> ReadJsonObjectAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentType is not { } type || !type.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            return (default, BadRequest("The body must be JSON (Content-Type: application/json)."));
        }

        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, default, cancellationToken);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (default, BadRequest("The body must be a JSON object."));
            }

            return (document.RootElement.Clone(), null);
        }
        catch (JsonException)
        {
            return (default, BadRequest("The body is not valid JSON."));
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
