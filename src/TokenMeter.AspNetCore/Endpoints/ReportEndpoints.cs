using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Delivery;
using TokenMeter.Reports;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>POST /reports/send {period}</c>: sends that usage report now, in the background (202).</summary>
internal static class ReportEndpoints
{
    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapPost("/reports/send", SendAsync)
            .WithName("TokenMeterSendReport")
            .WithSummary("Sends the usage report of the period just ended ('daily', 'weekly' or 'monthly') to the configured recipients now.")
            .Accepts<SendReportRequest>("application/json")
            .Produces<SendReportResponse>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict);
    }

    private static async Task<IResult> SendAsync(HttpContext context, CancellationToken cancellationToken)
    {
        string? periodText;
        try
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body, default, cancellationToken).ConfigureAwait(false);
            periodText = body.RootElement.ValueKind == JsonValueKind.Object
                && body.RootElement.TryGetProperty("period", out var p) && p.ValueKind == JsonValueKind.String
                ? p.GetString()
                : null;
        }
        catch (JsonException)
        {
            return AdminHttp.BadParameter("body", "The body must be a JSON object such as {\"period\": \"daily\"}.");
        }

        if (periodText is not ("daily" or "weekly" or "monthly") || !ReportPeriods.TryParse(periodText, out var period))
        {
            return AdminHttp.BadParameter("period", "'period' must be \"daily\", \"weekly\" or \"monthly\".");
        }

        var service = context.RequestServices.GetService<UsageReportService>();
        if (service is null || !service.TrySendNow(period))
        {
            return TypedResults.Problem(
                detail: "Reports cannot be sent: configure TokenMeter:Reports:Smtp:Host, TokenMeter:Reports:Smtp:From and TokenMeter:Reports:To.",
                statusCode: StatusCodes.Status409Conflict,
                title: "Reports are not configured");
        }

        var range = ReportPeriods.LastEnded(period, AdminHttp.Today(context));
        var mailer = context.RequestServices.GetRequiredService<RecipientMailer>();
        return TypedResults.Json(
            new SendReportResponse(
                ReportPeriods.Name(period),
                range.From.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                range.To.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                mailer.RecipientCount),
            AdminJson.Options,
            statusCode: StatusCodes.Status202Accepted);
    }
}

internal sealed record SendReportRequest(string Period);

internal sealed record SendReportResponse(string Period, string From, string To, int Recipients);
