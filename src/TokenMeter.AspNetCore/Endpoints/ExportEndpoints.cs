using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using TokenMeter.AspNetCore.Export;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /export</c> (one row per call) and <c>GET /export/summary</c> (one row per user), as CSV.</summary>
internal static class ExportEndpoints
{
    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapGet("/export", GetDetailed)
            .WithName("TokenMeterExportUsage")
            .WithSummary("CSV of every call between 'from' and 'to' (YYYY-MM-DD, inclusive), optionally for one 'userId'; streamed.")
            .WithQuery(static (
                [Description("First day (UTC, YYYY-MM-DD, inclusive), 2000-01-01..2199-12-31; default: the first call.")] DateOnly? from = null,
                [Description("Last day (UTC, YYYY-MM-DD, inclusive), 2000-01-01..2199-12-31; default: the last call.")] DateOnly? to = null,
                [Description("Only this user's calls.")][MaxLength(256)] string? userId = null) => { })
            .Produces<string>(StatusCodes.Status200OK, "text/csv")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapGet("/export/summary", GetSummary)
            .WithName("TokenMeterExportUserSummaries")
            .WithSummary("CSV of every user's all-time totals; streamed.")
            .Produces<string>(StatusCodes.Status200OK, "text/csv");
    }

    private static IResult GetDetailed(HttpContext context)
    {
        var request = context.Request;
        if (!AdminHttp.TryGetDate(request, "from", out var from, out var error)
            || !AdminHttp.TryGetDate(request, "to", out var to, out error)
            || !AdminHttp.TryGetSingle(request, "userId", out var userId, out error))
        {
            return error!;
        }

        if (from is not null && to is not null && from > to)
        {
            return AdminHttp.BadParameter("from", "'from' must not be after 'to'.");
        }

        if (string.IsNullOrEmpty(userId))
        {
            userId = null;
        }
        else if (!AdminHttp.IsValidUserId(userId))
        {
            return AdminHttp.BadParameter("userId", "'userId' must be a non-blank id of at most 256 characters.");
        }

        var query = new UsageExportQuery(from, to, userId);
        return new CsvExportResult(
            $"usage_detailed_{Stamp(context)}.csv",
            (Utf8CsvWriter csv, HttpContext ctx, CancellationToken ct) => UsageCsv.WriteDetailedAsync(csv, ctx, query, ct));
    }

    private static CsvExportResult GetSummary(HttpContext context)
        => new CsvExportResult($"usage_summary_{Stamp(context)}.csv", UsageCsv.WriteSummaryAsync);

    private static string Stamp(HttpContext context) => AdminHttp.Today(context).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
