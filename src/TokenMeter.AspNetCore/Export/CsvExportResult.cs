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
internal sealed class CsvExportResult : IResult
{
    private readonly string _fileName;
    private readonly Func<CsvWriter, HttpContext, CancellationToken, Task>? _writeRows;
    private readonly Func<Utf8CsvWriter, HttpContext, CancellationToken, Task>? _writeUtf8Rows;

    /// <summary>Rows written with CsvHelper.</summary>
    public CsvExportResult(string fileName, Func<CsvWriter, HttpContext, CancellationToken, Task> writeRows)
    {
        _fileName = fileName;
        _writeRows = writeRows;
    }

    /// <summary>Rows written with <see cref="Utf8CsvWriter"/> (the same bytes, for exports of many rows).</summary>
    public CsvExportResult(string fileName, Func<Utf8CsvWriter, HttpContext, CancellationToken, Task> writeRows)
    {
        _fileName = fileName;
        _writeUtf8Rows = writeRows;
    }

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
        response.Headers[HeaderNames.ContentDisposition] = new ContentDisposition { FileName = _fileName, Inline = false }.ToString();
        response.Headers[HeaderNames.CacheControl] = "no-store";
        httpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var cancellationToken = httpContext.RequestAborted;
        CsvWriter? csv = null;
        using var utf8 = _writeUtf8Rows is null ? null : new Utf8CsvWriter(response.BodyWriter);
        try
        {
            if (utf8 is not null)
            {
                // Rows reach the response only when the writer flushes: a failure before the first
                // flush still gets a proper error instead of a file.
                await _writeUtf8Rows!(utf8, httpContext, cancellationToken).ConfigureAwait(false);
                await utf8.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                csv = CsvWriter.Create(response.Body, Options, leaveOpen: true);
                await _writeRows!(csv, httpContext, cancellationToken).ConfigureAwait(false);
                await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
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
            Log.ExportFailedMidStream(StoreUnavailableProblem.Logger(httpContext), ex, _fileName);
            httpContext.Abort();
            return;
        }

        // Disposed only after a complete export: after a failure its buffered bytes must not reach the client.
        if (csv is not null)
        {
            await csv.DisposeAsync().ConfigureAwait(false);
        }
    }
}
