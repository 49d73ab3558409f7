namespace TokenMeter.AspNetCore.Reports;

/// <summary>Sends one email to the report recipients.</summary>
internal interface IReportMailer
{
    /// <summary>How many recipients a message goes to; 0 when mail is not configured.</summary>
    int RecipientCount { get; }

    ValueTask SendAsync(string subject, string html, string text, IReadOnlyDictionary<string, string>? headers, CancellationToken cancellationToken);
}
