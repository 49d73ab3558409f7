using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using TokenMeter.Repricing;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary><c>POST /reprice</c> (dry run or apply) and <c>GET /repricings</c> (the applied ones).</summary>
internal static class RepricingEndpoints
{
    private const string BodyShape = "'body' must be a JSON object {from: YYYY-MM-DD, to: YYYY-MM-DD, onlyUnpriced: bool, dryRun: bool}.";
    private static readonly DateOnly MinDay = new(2000, 1, 1);
    private static readonly DateOnly MaxDay = new(2199, 12, 31);

    public static void Map(IEndpointRouteBuilder admin)
    {
        admin.MapPost("/reprice", RepriceAsync)
            .WithName("TokenMeterReprice")
            .WithSummary("Re-prices the records of 'from'..'to' (UTC days, inclusive) against the current prices: a dry run, or applied in one transaction that also corrects every rollup. Months with a closed statement are left unchanged and listed with the difference.")
            .Accepts<RepriceRequest>("application/json")
            .Produces<RepriceResponse>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest);

        admin.MapGet("/repricings", GetRepricingsAsync)
            .WithName("TokenMeterGetRepricings")
            .WithSummary("Every applied re-pricing, newest first: who, when, which days, and the totals it changed.")
            .Produces<RepricingsResponse>(StatusCodes.Status200OK);
    }

    private static async Task<IResult> RepriceAsync(HttpContext context, UsageRepricer repricer, CancellationToken cancellationToken)
    {
        var (request, error) = await ReadAsync(context.Request, cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        var user = context.User;
        var by = user.Identity?.Name ?? user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? user.FindFirst("sub")?.Value;
        var result = await repricer.RepriceAsync(request! with { By = by is { Length: > 256 } ? by[..256] : by }, cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new RepriceResponse(
            result.Id,
            result.DryRun,
            result.Records,
            result.OldCostUsd,
            result.NewCostUsd,
            [.. result.ByModel.Select(m => new RepriceModelItem(m.Model, m.Records, m.OldCostUsd, m.NewCostUsd))],
            [.. result.ClosedMonths.Select(m => new RepriceClosedMonthItem(m.Month.ToString("yyyy-MM", CultureInfo.InvariantCulture), m.Records, m.DifferenceUsd))]));
    }

    private static async Task<IResult> GetRepricingsAsync(UsageRepricer repricer, CancellationToken cancellationToken)
    {
        var entries = await repricer.GetRepricingsAsync(1000, cancellationToken).ConfigureAwait(false);
        return AdminHttp.Ok(new RepricingsResponse(
            [.. entries.Select(e => new RepricingItem(e.Id, e.At, e.By, e.From, e.To, e.OnlyUnpriced, e.Records, e.OldCostUsd, e.NewCostUsd))]));
    }

    /// <summary>Reads and validates the body, naming the offending field on error.</summary>
    private static async Task<(RepricingRequest? Request, IResult? Error)> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            return (null, AdminHttp.BadParameter("body", BodyShape));
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, AdminHttp.BadParameter("body", BodyShape));
            }

            if (!TryDay(root, "from", out var from, out var error) || !TryDay(root, "to", out var to, out error))
            {
                return (null, error);
            }

            if (from > to)
            {
                return (null, AdminHttp.BadParameter("from", "'from' must be on or before 'to'."));
            }

            if (!TryBool(root, "onlyUnpriced", false, out var onlyUnpriced, out error) || !TryBool(root, "dryRun", true, out var dryRun, out error))
            {
                return (null, error);
            }

            return (new RepricingRequest(from, to, onlyUnpriced, dryRun), null);
        }
    }

    private static bool TryDay(JsonElement root, string name, out DateOnly day, out IResult? error)
    {
        day = default;
        error = null;
        if (!root.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String
            || !DateOnly.TryParseExact(value.GetString(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out day))
        {
            error = AdminHttp.BadParameter(name, $"'{name}' is required: a date written YYYY-MM-DD.");
            return false;
        }

        if (day < MinDay || day > MaxDay)
        {
            error = AdminHttp.BadParameter(name, $"'{name}' must lie in 2000-01-01..2199-12-31.");
            return false;
        }

        return true;
    }

    private static bool TryBool(JsonElement root, string name, bool defaultValue, out bool flag, out IResult? error)
    {
        flag = defaultValue;
        error = null;
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            error = AdminHttp.BadParameter(name, $"'{name}' must be true or false.");
            return false;
        }

        flag = value.GetBoolean();
        return true;
    }
}

/// <summary>Body of <c>POST /reprice</c>; <c>dryRun</c> defaults to true, <c>onlyUnpriced</c> to false.</summary>
internal sealed record RepriceRequest(DateOnly From, DateOnly To, bool OnlyUnpriced, bool DryRun);

internal sealed record RepriceModelItem(string? Model, long Records, decimal OldCostUsd, decimal NewCostUsd);

internal sealed record RepriceClosedMonthItem(string Month, long Records, decimal DifferenceUsd);

internal sealed record RepriceResponse(
    Guid? Id,
    bool DryRun,
    long Records,
    decimal OldCostUsd,
    decimal NewCostUsd,
    IReadOnlyList<RepriceModelItem> ByModel,
    IReadOnlyList<RepriceClosedMonthItem> ClosedMonths);

internal sealed record RepricingItem(Guid Id, DateTimeOffset At, string? By, DateOnly From, DateOnly To, bool OnlyUnpriced, long Records, decimal OldCostUsd, decimal NewCostUsd);

internal sealed record RepricingsResponse(IReadOnlyList<RepricingItem> Items);
