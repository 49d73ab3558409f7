using System.Globalization;
using System.Net;
using System.Text;
using TokenMeter.Delivery;

namespace TokenMeter.Alerts;

/// <summary>Writes an alert as an email: a subject naming the event, a plain-text and an HTML body with the same facts.</summary>
internal static class AlertEmailRenderer
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Subject(string eventType, object data) => data switch
    {
        BudgetThresholdAlert a => $"TokenMeter alert {eventType}: user {a.UserId} reached {a.ThresholdPercent.ToString(Invariant)}% of the monthly budget ({a.Month})",
        PlatformDailyCostAlert a => $"TokenMeter alert {eventType}: platform cost on {a.Date} reached {MailText.Money(a.CostUsd)}",
        _ => $"TokenMeter alert {eventType}",
    };

    public static string Text(string eventType, string id, object data)
    {
        var text = new StringBuilder();
        text.AppendLine(Subject(eventType, data));
        text.AppendLine();
        foreach (var (label, value) in Facts(eventType, id, data))
        {
            text.AppendLine(Invariant, $"{label}: {value}");
        }

        return text.ToString();
    }

    public static string Html(string eventType, string id, object data)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html><body style=\"font-family:Segoe UI,Arial,sans-serif;color:#111827\">");
        html.Append(Invariant, $"<h2 style=\"font-size:18px\">{E(Subject(eventType, data))}</h2>");
        html.Append("<table style=\"border-collapse:collapse;font-size:14px\">");
        foreach (var (label, value) in Facts(eventType, id, data))
        {
            html.Append(Invariant, $"<tr><th style=\"text-align:left;padding:4px 12px 4px 0;color:#6b7280\">{E(label)}</th><td style=\"padding:4px 0\">{E(value)}</td></tr>");
        }

        html.Append("</table></body></html>");
        return html.ToString();
    }

    private static IEnumerable<(string Label, string Value)> Facts(string eventType, string id, object data)
    {
        yield return ("Event", eventType);
        switch (data)
        {
            case BudgetThresholdAlert a:
                yield return ("User", a.UserId);
                yield return ("Month", a.Month);
                yield return ("Threshold", a.ThresholdPercent.ToString(Invariant) + "% of the monthly cost budget");
                yield return ("Monthly budget", MailText.Money(a.MonthlyCostUsd));
                yield return ("Spent this month", MailText.Money(a.MonthToDateCostUsd));
                break;
            case PlatformDailyCostAlert a:
                yield return ("Date (UTC)", a.Date);
                yield return ("Cost today", MailText.Money(a.CostUsd));
                yield return ("Threshold", MailText.Money(a.ThresholdUsd));
                break;
        }

        yield return ("Alert id", id);
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
