using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace HomeworkApi.Hosting;

/// <summary>
/// <c>/health</c> answers <c>{"status":"Healthy","checks":{"tokenmeter-writer":"Healthy",...}}</c>:
/// the status of each check by name, never its data or error (paths, hosts), since it is public.
/// </summary>
internal static class HealthResponse
{
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new Dictionary<string, object>
        {
            ["status"] = report.Status.ToString(),
            ["checks"] = report.Entries.ToDictionary(e => e.Key, e => e.Value.Status.ToString(), StringComparer.Ordinal),
        };
        return JsonSerializer.SerializeAsync(context.Response.Body, body, cancellationToken: context.RequestAborted);
    }
}
