using System.Net.Mime;
using CsvHelper;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using TokenMeter.AspNetCore.Diagnostics;

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
        try
        {
            await writeRows(csv, httpContext, cancellationToken).ConfigureAwait(false);
            await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            if (!response.HasStarted)
            {
                // Nothing was sent yet: the client gets a proper error instead of a file.
                response.Headers.Remove(HeaderNames.ContentDisposition);
                if (StoreUnavailableProblem.IsStoreUnavailable(ex))
                {
                    Log.StoreUnavailable(StoreUnavailableProblem.Logger(httpContext), ex, httpContext.Request.Path);
                    await StoreUnavailableProblem.ToResult().ExecuteAsync(httpContext).ConfigureAwait(false);
                    return;
                }

                throw;
            }

            // The status line and some rows are out: end the connection without the closing chunk, so
            // the client sees a failed download, never a complete-looking truncated file.
            Log.ExportFailedMidStream(StoreUnavailableProblem.Logger(httpContext), ex, fileName);
            httpContext.Abort();
            return;
        }

        // Disposed only after a complete export: after a failure its buffered bytes must not reach the client.
        await csv.DisposeAsync().ConfigureAwait(false);
    }
}
