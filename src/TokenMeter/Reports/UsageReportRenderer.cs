using System.Globalization;
using System.Net;
using System.Text;
using TokenMeter.Delivery;

namespace TokenMeter.Reports;

/// <summary>Writes a report as a subject, an HTML body and a plain-text body. Money is shown exact to 8 decimals.</summary>
internal static class UsageReportRenderer
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Subject(UsageReport report)
        => $"TokenMeter {ReportPeriods.Name(report.Period)} usage report: {RangeText(report.Range)}";

    public static string RangeText(ReportRange range)
        => range.From == range.To ? Date(range.From) : $"{Date(range.From)} to {Date(range.To)}";

    public static string Money(decimal value) => MailText.Money(value);

    public static string Count(long value) => value.ToString("#,0", Invariant);

    public static string Change(decimal current, decimal previous)
    {
        if (previous == 0)
        {
            return current == 0 ? "no change" : "new";
        }

        var change = (current - previous) / previous * 100m;
        return (change >= 0 ? "+" : string.Empty) + Math.Round(change, 1, MidpointRounding.ToEven).ToString("0.0", Invariant) + "%";
    }

    public static string Text(UsageReport report)
    {
        var text = new StringBuilder();
        text.AppendLine(Invariant, $"TokenMeter {ReportPeriods.Name(report.Period)} usage report");
        text.AppendLine(Invariant, $"Period: {RangeText(report.Range)} (previous: {RangeText(report.PreviousRange)})");
        text.AppendLine();
        text.AppendLine(Invariant, $"Calls:  {Count(report.Current.Calls)} (previous {Count(report.Previous.Calls)}, {Change(report.Current.Calls, report.Previous.Calls)})");
        text.AppendLine(Invariant, $"Tokens: {Count(report.Current.TotalTokens)} (previous {Count(report.Previous.TotalTokens)}, {Change(report.Current.TotalTokens, report.Previous.TotalTokens)})");
        text.AppendLine(Invariant, $"Cost:   {Money(report.Current.CostUsd)} (previous {Money(report.Previous.CostUsd)}, {Change(report.Current.CostUsd, report.Previous.CostUsd)})");
        text.AppendLine();
        text.AppendLine(Invariant, $"Top {report.TopUsers.Count} users by cost:");
        foreach (var u in report.TopUsers)
        {
            text.AppendLine(Invariant, $"  {UserLabel(u.UserId, u.Username)}: {Count(u.Figures.Calls)} calls, {Count(u.Figures.TotalTokens)} tokens, {Money(u.Figures.CostUsd)}");
        }

        text.AppendLine();
        text.AppendLine(Invariant, $"Top {report.TopEndpoints.Count} endpoints by cost:");
        foreach (var e in report.TopEndpoints)
        {
            text.AppendLine(Invariant, $"  {e.Endpoint ?? "(none)"}: {Count(e.Figures.Calls)} calls, {Count(e.Figures.TotalTokens)} tokens, {Money(e.Figures.CostUsd)}");
        }

        var f = report.Forecast;
        text.AppendLine();
        text.AppendLine(Invariant, $"Forecast for {f.Month:yyyy-MM}: {Money(f.ProjectedMonthCostUsd)} (80% interval {Money(f.ProjectedLowUsd)} to {Money(f.ProjectedHighUsd)}; month to date {Money(f.MonthToDateCostUsd)}; {f.Method})");
        text.AppendLine();
        text.AppendLine(Invariant, $"Users above {UsageReportBuilder.BudgetWarningPercent.ToString("0", Invariant)}% of their monthly budget: {report.UsersNearBudget.Count}");
        foreach (var b in report.UsersNearBudget)
        {
            text.AppendLine(Invariant, $"  {UserLabel(b.UserId, b.Username)}: {b.PercentUsed.ToString("0.0", Invariant)}% ({BudgetText(b)})");
        }

        text.AppendLine();
        text.AppendLine(Invariant, $"Generated {report.GeneratedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm", Invariant)} UTC.");
        return text.ToString();
    }

    public static string Html(UsageReport report)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").Append(E(Subject(report))).Append("</title></head>");
        html.Append("<body style=\"font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2937;max-width:720px;margin:auto\">");
        html.Append(Invariant, $"<h1 style=\"font-size:20px\">TokenMeter {E(ReportPeriods.Name(report.Period))} usage report</h1>");
        html.Append(Invariant, $"<p>Period <strong>{E(RangeText(report.Range))}</strong>, compared with {E(RangeText(report.PreviousRange))}.</p>");

        html.Append(TableStart("Figure", "This period", "Previous", "Change"));
        Row(html, "Calls", Count(report.Current.Calls), Count(report.Previous.Calls), Change(report.Current.Calls, report.Previous.Calls));
        Row(html, "Tokens", Count(report.Current.TotalTokens), Count(report.Previous.TotalTokens), Change(report.Current.TotalTokens, report.Previous.TotalTokens));
        Row(html, "Cost", Money(report.Current.CostUsd), Money(report.Previous.CostUsd), Change(report.Current.CostUsd, report.Previous.CostUsd));
        html.Append("</tbody></table>");

        html.Append(Invariant, $"<h2 style=\"font-size:16px\">Top {report.TopUsers.Count} users</h2>");
        html.Append(TableStart("User", "Calls", "Tokens", "Cost"));
        foreach (var u in report.TopUsers)
        {
            Row(html, UserLabel(u.UserId, u.Username), Count(u.Figures.Calls), Count(u.Figures.TotalTokens), Money(u.Figures.CostUsd));
        }

        html.Append("</tbody></table>");
        html.Append(Invariant, $"<h2 style=\"font-size:16px\">Top {report.TopEndpoints.Count} endpoints</h2>");
        html.Append(TableStart("Endpoint", "Calls", "Tokens", "Cost"));
        foreach (var e in report.TopEndpoints)
        {
            Row(html, e.Endpoint ?? "(none)", Count(e.Figures.Calls), Count(e.Figures.TotalTokens), Money(e.Figures.CostUsd));
        }

        html.Append("</tbody></table>");
        var f = report.Forecast;
        html.Append(Invariant, $"<h2 style=\"font-size:16px\">Forecast for {f.Month:yyyy-MM}</h2>");
        html.Append(Invariant, $"<p>Projected <strong>{E(Money(f.ProjectedMonthCostUsd))}</strong> (80% interval {E(Money(f.ProjectedLowUsd))} to {E(Money(f.ProjectedHighUsd))}); month to date {E(Money(f.MonthToDateCostUsd))}. <small>{E(f.Method)}</small></p>");

        html.Append(Invariant, $"<h2 style=\"font-size:16px\">Users above {UsageReportBuilder.BudgetWarningPercent.ToString("0", Invariant)}% of their monthly budget ({report.UsersNearBudget.Count})</h2>");
        if (report.UsersNearBudget.Count > 0)
        {
            html.Append(TableStart("User", "Used", "Spend", "Budget"));
            foreach (var b in report.UsersNearBudget)
            {
                Row(html, UserLabel(b.UserId, b.Username), b.PercentUsed.ToString("0.0", Invariant) + "%", Money(b.MonthToDateCostUsd), BudgetText(b));
            }

            html.Append("</tbody></table>");
        }
        else
        {
            html.Append("<p>None.</p>");
        }

        html.Append(Invariant, $"<p style=\"color:#6b7280;font-size:12px\">Generated {E(report.GeneratedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm", Invariant))} UTC by TokenMeter.</p>");
        html.Append("</body></html>");
        return html.ToString();
    }

    private static string BudgetText(ReportBudgetRow b)
    {
        var parts = new List<string>();
        if (b.MonthlyCostUsd is { } cost)
        {
            parts.Add($"{Money(b.MonthToDateCostUsd)} of {Money(cost)}");
        }

        if (b.MonthlyTokens is { } tokens)
        {
            parts.Add($"{Count(b.MonthToDateTokens)} of {Count(tokens)} tokens");
        }

        return string.Join("; ", parts);
    }

    private static string UserLabel(string userId, string? username)
        => username is { Length: > 0 } ? $"{username} (#{userId})" : $"#{userId}";

    private static string TableStart(params string[] headers)
    {
        var html = new StringBuilder("<table style=\"border-collapse:collapse;width:100%;margin:8px 0 16px\"><thead><tr>");
        for (var i = 0; i < headers.Length; i++)
        {
            html.Append(Invariant, $"<th style=\"text-align:{(i == 0 ? "left" : "right")};border-bottom:2px solid #e5e7eb;padding:4px 8px\">{E(headers[i])}</th>");
        }

        return html.Append("</tr></thead><tbody>").ToString();
    }

    private static void Row(StringBuilder html, params string[] cells)
    {
        html.Append("<tr>");
        for (var i = 0; i < cells.Length; i++)
        {
            html.Append(Invariant, $"<td style=\"text-align:{(i == 0 ? "left" : "right")};border-bottom:1px solid #f3f4f6;padding:4px 8px\">{E(cells[i])}</td>");
        }

        html.Append("</tr>");
    }

    private static string Date(DateOnly day) => day.ToString("yyyy-MM-dd", Invariant);

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
