using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary>What every admin handler shares: parameter parsing, problem results, "today", user lookups.</summary>
internal static class AdminHttp
{
    public const string Tag = "TokenMeter usage";

    public static IResult Ok<T>(T value) => TypedResults.Json(value, AdminJson.Options);

    public static IResult BadParameter(string name, string detail) => TypedResults.Problem(
        detail: detail,
        statusCode: StatusCodes.Status400BadRequest,
        title: "Invalid request parameter",
        extensions: new Dictionary<string, object?> { ["parameter"] = name });

    public static IResult NotFound(string detail) => TypedResults.Problem(
        detail: detail, statusCode: StatusCodes.Status404NotFound, title: "Not found");

    public static DateOnly Today(HttpContext context)
        => DateOnly.FromDateTime(Time(context).GetUtcNow().UtcDateTime);

    public static TimeProvider Time(HttpContext context)
        => context.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System;

    /// <summary>Reads an optional integer query parameter within bounds.</summary>
    public static bool TryGetInt(HttpRequest request, string name, int defaultValue, int min, int max, out int value, out IResult? error)
    {
        error = null;
        value = defaultValue;
        if (!TryGetSingle(request, name, out var text, out error) || text is null)
        {
            return error is null;
        }

        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            error = BadParameter(name, max == int.MaxValue
                ? $"'{name}' must be an integer of at least {min}."
                : $"'{name}' must be an integer from {min} to {max}.");
            return false;
        }

        return true;
    }

    /// <summary>Reads an optional <c>YYYY-MM-DD</c> query parameter.</summary>
    public static bool TryGetDate(HttpRequest request, string name, out DateOnly? value, out IResult? error)
    {
        value = null;
        if (!TryGetSingle(request, name, out var text, out error) || string.IsNullOrEmpty(text))
        {
            return error is null;
        }

        if (!DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            error = BadParameter(name, $"'{name}' must be a date written YYYY-MM-DD.");
            return false;
        }

        value = date;
        return true;
    }

    /// <summary>Reads an optional query parameter that may appear at most once.</summary>
    public static bool TryGetSingle(HttpRequest request, string name, out string? value, out IResult? error)
    {
        error = null;
        value = null;
        if (!request.Query.TryGetValue(name, out var values) || values.Count == 0)
        {
            return true;
        }

        if (values.Count > 1)
        {
            error = BadParameter(name, $"'{name}' may be given only once.");
            return false;
        }

        value = values[0];
        return true;
    }

    public static bool IsValidUserId(string? userId) => !string.IsNullOrWhiteSpace(userId) && userId.Length <= 256;

    /// <summary>Usernames and emails of a page of users, in one directory call; empty without a directory.</summary>
    public static async ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> LookUpUsersAsync(
        HttpContext context, IEnumerable<string> userIds, CancellationToken cancellationToken)
    {
        var directory = context.RequestServices.GetService<IUserDirectory>();
        if (directory is null)
        {
            return Empty;
        }

        var ids = userIds.Distinct(StringComparer.Ordinal).ToArray();
        return ids.Length == 0 ? Empty : await directory.GetUsersAsync(ids, cancellationToken).ConfigureAwait(false);
    }

    private static readonly IReadOnlyDictionary<string, UserDirectoryEntry> Empty = new Dictionary<string, UserDirectoryEntry>();
}
