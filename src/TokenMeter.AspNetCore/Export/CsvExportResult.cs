using System.Net.Mime;
using CsvHelper;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace TokenMeter.AspNetCore.Export;

/// <summary>
/// Streams a CSV file straight to the response body: rows are written as they are produced and
/// flushed chunk by chunk, so memory does not grow with the number of rows.
/// </summary>
internal sealed class CsvExportResult(string fileName, Func<CsvWriter, HttpContext, CancellationToken, Task> writeRows) : IResult
{
    /// <summary>RFC 4180, UTF-8, invariant culture, formula-looking text cells escaped with <c>'</c>.</summary>
    public static CsvWriterOptions Options { get; } = new()
    {
        Injection = CsvInjection.Escape,
        FormatProvider = System.Globalization.CultureInfo.InvariantCulture,
    };

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var response = httpContext.Response;
        response.ContentType = "text/csv; charset=utf-8";
        response.Headers[HeaderNames.ContentDisposition] = new ContentDisposition { FileName = fileName, Inline = false }.ToString();
        response.Headers[HeaderNames.CacheControl] = "no-store";
        httpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var cancellationToken = httpContext.RequestAborted;
        var csv = CsvWriter.Create(response.Body, Options, leaveOpen: true);
        await using (csv.ConfigureAwait(false))
        {
            await writeRows(csv, httpContext, cancellationToken).ConfigureAwait(false);
            await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
