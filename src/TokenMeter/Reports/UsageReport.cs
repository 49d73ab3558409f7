using TokenMeter.Forecasting;

namespace TokenMeter.Reports;

/// <summary>Everything a usage report shows.</summary>
internal sealed record UsageReport(
    ReportPeriod Period,
    ReportRange Range,
    ReportRange PreviousRange,
    ReportTotals Current,
    ReportTotals Previous,
    IReadOnlyList<ReportUserRow> TopUsers,
    IReadOnlyList<ReportEndpointRow> TopEndpoints,
    CostForecast Forecast,
    IReadOnlyList<ReportBudgetRow> UsersNearBudget,
    DateTimeOffset GeneratedAt);

/// <summary>Platform calls, total tokens and cost over a period (anonymous calls included).</summary>
internal sealed record ReportTotals(long Calls, long Tokens, decimal CostUsd);

/// <summary>A user's usage over the period.</summary>
internal sealed record ReportUserRow(string UserId, string? Username, string? Email, long Calls, long Tokens, decimal CostUsd);

/// <summary>An endpoint's usage over the period (calls charged to users).</summary>
internal sealed record ReportEndpointRow(string? Endpoint, long Calls, long Tokens, decimal CostUsd);

/// <summary>A user above the warning share of a monthly budget, in the month the period ends in.</summary>
internal sealed record ReportBudgetRow(
    string UserId,
    string? Username,
    decimal MonthToDateCostUsd,
    decimal? MonthlyCostUsd,
    long MonthToDateTokens,
    long? MonthlyTokens,
    decimal PercentUsed);
