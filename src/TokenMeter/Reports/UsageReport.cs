using TokenMeter.Forecasting;

namespace TokenMeter.Reports;

/// <summary>Everything a usage report shows.</summary>
internal sealed record UsageReport(
    ReportPeriod Period,
    ReportRange Range,
    ReportRange PreviousRange,
    UsageFigures Current,
    UsageFigures Previous,
    IReadOnlyList<ReportUserRow> TopUsers,
    IReadOnlyList<ReportEndpointRow> TopEndpoints,
    CostForecast Forecast,
    IReadOnlyList<ReportBudgetRow> UsersNearBudget,
    DateTimeOffset GeneratedAt);

/// <summary>A user's usage over the period.</summary>
internal sealed record ReportUserRow(string UserId, string? Username, string? Email, UsageFigures Figures);

/// <summary>An endpoint's usage over the period (calls charged to users).</summary>
internal sealed record ReportEndpointRow(string? Endpoint, UsageFigures Figures);

/// <summary>A user above the warning share of a monthly budget, in the month the period ends in.</summary>
internal sealed record ReportBudgetRow(
    string UserId,
    string? Username,
    decimal MonthToDateCostUsd,
    decimal? MonthlyCostUsd,
    long MonthToDateTokens,
    long? MonthlyTokens,
    decimal PercentUsed);
