using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace HomeworkApi.Hosting;

/// <summary>
/// Kestrel refuses some requests before any middleware runs — a malformed request line, a <c>%00</c> in
/// the path, headers over the size limit — and answers them itself with an empty body and a closed
/// connection. This connection middleware gives those answers the problem-details body (and the
/// security headers) every other error has: it watches the response bytes Kestrel writes and, when a
/// whole header block is a 4xx/5xx with <c>Content-Length: 0</c> and <c>Connection: close</c> (only
/// Kestrel's own refusals look like that: the app's errors always carry a body), writes the same
/// status with a body instead. Every other write passes through untouched (one prefix comparison).
/// Plain HTTP/1.x only: behind TLS terminated by Kestrel the middleware sees encrypted bytes and stays
/// out of the way; the sample expects TLS to end at a proxy in front of it.
/// </summary>
internal static class KestrelRejectionProblems
{
    /// <summary>Adds the rewrite to a Kestrel endpoint.</summary>
    public static void UseRejectionProblems(this ListenOptions listenOptions) => listenOptions.Use(next => context =>
    {
        context.Transport = new Transport(context.Transport.Input, new RejectionWriter(context.Transport.Output));
        return next(context);
    });

    /// <summary>The answer to send instead of <paramref name="headerBlock"/>, or null when it is not a bodyless refusal.</summary>
    internal static byte[]? Rewrite(ReadOnlySpan<byte> headerBlock)
    {
        if (headerBlock.Length < 16 || !headerBlock.StartsWith("HTTP/1."u8) || headerBlock[9] is not ((byte)'4' or (byte)'5')
            || !headerBlock.EndsWith("\r\n\r\n"u8)
            || headerBlock.IndexOf("\r\nContent-Length: 0\r\n"u8) < 0
            || headerBlock.IndexOf("\r\nConnection: close\r\n"u8) < 0
            || headerBlock.IndexOf("\r\nContent-Type:"u8) >= 0)
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(headerBlock);
        if (!int.TryParse(text.AsSpan(9, 3), NumberStyles.None, CultureInfo.InvariantCulture, out var status))
        {
            return null;
        }

        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["type"] = "about:blank",
            ["title"] = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status),
            ["status"] = status,
            ["detail"] = status switch
            {
                StatusCodes.Status414UriTooLong => "The request line is over the server's size limit.",
                StatusCodes.Status431RequestHeaderFieldsTooLarge => "The request headers are over the server's size limit.",
                >= 500 => "The server could not read the request.",
                _ => "The request is malformed (for example a %00 or a non-ASCII byte in its path, or a broken header); the server refused it before reading it.",
            },
        });
        var headers = text.Replace(
            "\r\nContent-Length: 0\r\n",
            "\r\nContent-Length: " + body.Length.ToString(CultureInfo.InvariantCulture) + "\r\nContent-Type: application/problem+json\r\n"
                + "Content-Security-Policy: " + SecurityHeaders.ContentSecurityPolicy + "\r\nX-Content-Type-Options: nosniff\r\n"
                + "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
            StringComparison.Ordinal);
        return [.. Encoding.ASCII.GetBytes(headers), .. body];
    }

    private sealed class Transport(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }

    /// <summary>Passes every write through, except a bodyless refusal's header block, written with a body instead.</summary>
    private sealed class RejectionWriter(PipeWriter inner) : PipeWriter
    {
        private Memory<byte> _memory;

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override Memory<byte> GetMemory(int sizeHint = 0) => _memory = inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

        public override void Advance(int bytes)
        {
            var written = _memory.Span[..Math.Min(bytes, _memory.Length)];
            if (written.Length == bytes && written.StartsWith("HTTP/1."u8) && Rewrite(written) is { } answer)
            {
                // Not advanced: the refusal's bytes are replaced, in the same unflushed buffer, by the answer.
                _memory = default;
                inner.Write<byte>(answer);
                return;
            }

            _memory = default;
            inner.Advance(bytes);
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);
    }
}
