namespace TokenMeter.Delivery;

/// <summary>One email: recipients, subject, an HTML and a plain-text body with the same facts, and extra headers.</summary>
/// <param name="To">The recipients' addresses.</param>
/// <param name="Subject">The subject line.</param>
/// <param name="HtmlBody">The HTML body.</param>
/// <param name="TextBody">The plain-text body.</param>
/// <param name="Headers">Extra headers, e.g. <c>X-TokenMeter-Event</c>.</param>
public sealed record EmailMessage(
    IReadOnlyList<string> To,
    string Subject,
    string HtmlBody,
    string TextBody,
    IReadOnlyDictionary<string, string> Headers);
