using System.Net;
using System.Net.Http.Headers;

namespace TokenMeter.Benchmarks.Metering;

/// <summary>
/// An HTTP handler that answers every request with bytes recorded from the fake server (a plain
/// reply, or a stream when the request body asks for one), with no socket in between. It reads
/// the request body as a real transport would, so the SDK still serialises it. Lets the probe
/// measure what metering costs the caller's CPU without network noise.
/// </summary>
internal sealed class CannedReplyHandler(byte[] plain, byte[] stream) : HttpMessageHandler
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private static readonly MediaTypeHeaderValue EventStream = new("text/event-stream");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var streaming = false;
        if (request.Content is not null)
        {
            using var body = new MemoryStream();
            await request.Content.CopyToAsync(body, cancellationToken).ConfigureAwait(false);
            streaming = body.GetBuffer().AsSpan(0, (int)body.Length).IndexOf("\"stream\":true"u8) >= 0;
        }

        var content = new ByteArrayContent(streaming ? stream : plain);
        content.Headers.ContentType = streaming ? EventStream : Json;
        return new HttpResponseMessage(HttpStatusCode.OK) { Content = content, RequestMessage = request };
    }

    /// <summary>Records the fake server's reply to one plain and one streamed chat request.</summary>
    public static async Task<CannedReplyHandler> RecordAsync(Uri endpoint)
    {
        using var http = new HttpClient();
        var url = new Uri(endpoint.ToString().TrimEnd('/') + "/chat/completions");
        const string Request = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]""";
        using var plainReply = await http.PostAsync(url, new StringContent(Request + "}", System.Text.Encoding.UTF8, "application/json")).ConfigureAwait(false);
        using var streamReply = await http.PostAsync(url, new StringContent(Request + ""","stream":true,"stream_options":{"include_usage":true}}""", System.Text.Encoding.UTF8, "application/json")).ConfigureAwait(false);
        return new CannedReplyHandler(
            await plainReply.EnsureSuccessStatusCode().Content.ReadAsByteArrayAsync().ConfigureAwait(false),
            await streamReply.EnsureSuccessStatusCode().Content.ReadAsByteArrayAsync().ConfigureAwait(false));
    }
}
