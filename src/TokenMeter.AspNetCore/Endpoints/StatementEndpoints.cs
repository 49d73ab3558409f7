using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using CsvHelper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Export;
using TokenMeter.Billing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>GET /statements?month=</c> (JSON) and <c>GET /statements/export?month=</c> (CSV, one row per line item).</summary>
internal static class StatementEndpoints
{
    public static readonly string[] CsvHeader =
    [
        "month", "userId", "username", "email", "endpoint", "model", "calls", "inputTokens", "cachedInputTokens", "cacheWriteTokens",
        "outputTokens", "totalTokens", "costUsd", "userCostUsd", "userAmountUsd", "markupPercent", "currency",
    ];

    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapGet("/statements", GetStatementsAsync)
            .WithName("TokenMeterGetStatements")
            .WithSummary("Every user's statement for 'month' (YYYY-MM, default this month): line items by endpoint and model, cost and amount with markup.")
            .WithQuery(static ([Description("The month (UTC, YYYY-MM), 2000-01..2199-12; default this month.")][RegularExpression("^[0-9]{4}-(0[1-9]|1[0-2])$")] string? month = null) => { })
            .Produces<StatementsResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapGet("/statements/export", ExportStatements)
            .WithName("TokenMeterExportStatements")
            .WithSummary("CSV of the statements' line items for 'month' (YYYY-MM, default this month); streamed.")
            .WithQuery(static ([Description("The month (UTC, YYYY-MM), 2000-01..2199-12; default this month.")][RegularExpression("^[0-9]{4}-(0[1-9]|1[0-2])$")] string? month = null) => { })
            .Produces<string>(StatusCodes.Status200OK, "text/csv")
            .ProducesProblem(StatusCodes.Status400BadRequest);
    }

    /// <summary>Reads <c>month</c> (<c>YYYY-MM</c>); this month when absent.</summary>
    internal static bool TryGetMonth(HttpContext context, out DateOnly month, out IResult? error)
    {
        var today = AdminHttp.Today(context);
        month = new DateOnly(today.Year, today.Month, 1);
        if (!AdminHttp.TryGetSingle(context.Request, "month", out var text, out error))
        {
            return false;
        }

        if (string.IsNullOrEmpty(text))
        {
            return true;
        }

        if (!DateOnly.TryParseExact(text + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out month) || text.Length != 7)
        {
            error = AdminHttp.BadParameter("month", "'month' must be a month written YYYY-MM.");
            return false;
        }

        if (!AdminHttp.IsInRange(month))
        {
            error = AdminHttp.OutOfRange("month");
            return false;
        }

        return true;
    }

    internal static async ValueTask<MonthlyStatement> GetStatementAsync(HttpContext context, DateOnly month, CancellationToken cancellationToken)
    {
        var options = context.RequestServices.GetService<IOptions<BillingOptions>>()?.Value ?? new BillingOptions();
        var calculator = new StatementCalculator(context.RequestServices.GetRequiredService<IUsageQueries>());
        return await calculator.GetMonthlyStatementAsync(month, options.MarkupPercent, options.Currency, null, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<IResult> GetStatementsAsync(HttpContext context, CancellationToken cancellationToken)
    {
        if (!TryGetMonth(context, out var month, out var error))
        {
            return error!;
        }

        var statement = await GetStatementAsync(context, month, cancellationToken).ConfigureAwait(false);
        var users = await AdminHttp.LookUpUsersAsync(context, statement.Items.Select(i => i.UserId), cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(StatementsResponse.From(statement, users));
    }

    private static IResult ExportStatements(HttpContext context)
    {
        if (!TryGetMonth(context, out var month, out var error))
        {
            return error!;
        }

        return new CsvExportResult(
            $"usage_statement_{month.ToString("yyyy-MM", CultureInfo.InvariantCulture)}.csv",
            (csv, ctx, ct) => WriteCsvAsync(csv, ctx, month, ct));
    }

    private static async Task WriteCsvAsync(CsvWriter csv, HttpContext context, DateOnly month, CancellationToken cancellationToken)
    {
        var statement = await GetStatementAsync(context, month, cancellationToken).ConfigureAwait(false);
        var monthText = month.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        csv.WriteHeader(CsvHeader);
        foreach (var chunk in statement.Items.Chunk(UsageCsv.ChunkSize))
        {
            var users = await AdminHttp.LookUpUsersAsync(context, chunk.Select(i => i.UserId), cancellationToken).ConfigureAwait(false);
            foreach (var item in chunk)
            {
                users.TryGetValue(item.UserId, out var user);
                foreach (var line in item.Lines)
                {
                    csv.WriteField(monthText);
                    csv.WriteField(item.UserId);
                    csv.WriteField(user?.Username);
                    csv.WriteField(user?.Email);
                    csv.WriteField(line.Endpoint);
                    csv.WriteField(line.Model);
                    csv.WriteField(line.Figures.Calls, default);
                    csv.WriteField(line.Figures.InputTokens, default);
                    csv.WriteField(line.Figures.CachedInputTokens, default);
                    csv.WriteField(line.Figures.CacheWriteTokens, default);
                    csv.WriteField(line.Figures.OutputTokens, default);
                    csv.WriteField(line.Figures.TotalTokens, default);
                    csv.WriteField(line.Figures.CostUsd, default);
                    csv.WriteField(item.CostUsd, default);
                    csv.WriteField(item.AmountUsd, default);
                    csv.WriteField(statement.MarkupPercent, default);
                    csv.WriteField(statement.Currency);
                    await csv.EndRecordAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}

internal sealed record StatementsResponse(
    string Month,
    string Currency,
    decimal MarkupPercent,
    IReadOnlyList<StatementItem> Items,
    decimal TotalCostUsd,
    decimal TotalAmountUsd)
{
    public static StatementsResponse From(MonthlyStatement s, IReadOnlyDictionary<string, UserDirectoryEntry> users) => new(
        s.Month.ToString("yyyy-MM", CultureInfo.InvariantCulture),
        s.Currency,
        s.MarkupPercent,
        s.Items.Select(i => new StatementItem(
            i.UserId,
            users.GetValueOrDefault(i.UserId)?.Username,
            users.GetValueOrDefault(i.UserId)?.Email,
            i.Lines,
            i.CostUsd,
            i.AmountUsd)).ToList(),
        s.TotalCostUsd,
        s.TotalAmountUsd);
}

internal sealed record StatementItem(string UserId, string? Username, string? Email, IReadOnlyList<StatementLine> Lines, decimal CostUsd, decimal AmountUsd);
