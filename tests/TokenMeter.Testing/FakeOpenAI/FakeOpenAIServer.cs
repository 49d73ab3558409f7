using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TokenMeter.Testing.FakeOpenAI;

/// <summary>
/// An OpenAI-compatible HTTP server on 127.0.0.1 (Kestrel, a port the OS chooses) that speaks the
/// exact wire format of chat completions (plain and streaming), responses (plain and streaming),
/// embeddings, images (token usage for gpt-image-1, per-image for DALL·E), audio transcriptions,
/// speech, moderations and Batch API output files, with scripted usage, failures and delays.
/// </summary>
/// <example>
/// <code>
/// await using var server = await FakeOpenAIServer.StartAsync();
/// server.Enqueue(FakeReply.Error(429, TimeSpan.FromMilliseconds(5)));
/// var client = new OpenAIClient(new ApiKeyCredential("k"), new OpenAIClientOptions { Endpoint = server.Endpoint });
/// </code>
/// </example>
public sealed class FakeOpenAIServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<FakeReply> _script = new();
    private readonly ConcurrentQueue<FakeRequest> _requests = new();
    private readonly ConcurrentDictionary<string, byte[]> _files = new(StringComparer.Ordinal);
    private int _sequence;

    private FakeOpenAIServer(WebApplication app, Uri endpoint)
    {
        _app = app;
        Endpoint = endpoint;
    }

    /// <summary>The base address to give the OpenAI SDK, e.g. <c>http://127.0.0.1:54321/v1</c>.</summary>
    public Uri Endpoint { get; }

    /// <summary>What the server does when nothing is enqueued. Default: <see cref="FakeReply.Ok"/>.</summary>
    public FakeReply DefaultReply { get; set; } = FakeReply.Ok;

    /// <summary>When set, decides the reply of every request that has no enqueued reply (overrides <see cref="DefaultReply"/>).</summary>
    public Func<FakeRequest, FakeReply>? Responder { get; set; }

    /// <summary>Every request received so far, in arrival order.</summary>
    public IReadOnlyList<FakeRequest> Requests => _requests.ToArray();

    /// <summary>Number of requests received so far.</summary>
    public int RequestCount => _requests.Count;

    /// <summary>Starts a server.</summary>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running server; dispose it to stop it.</returns>
    public static async Task<FakeOpenAIServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.Limits.MaxRequestBodySize = null;
        });
        var app = builder.Build();
        FakeOpenAIServer? server = null;
        app.Run(ctx => server!.HandleAsync(ctx));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server = new FakeOpenAIServer(app, new Uri(address.TrimEnd('/') + "/v1"));
        return server;
    }

    /// <summary>Scripts the reply to the next request that has no reply yet (FIFO).</summary>
    /// <param name="replies">The replies, in order.</param>
    public void Enqueue(params FakeReply[] replies)
    {
        ArgumentNullException.ThrowIfNull(replies);
        foreach (var reply in replies)
        {
            _script.Enqueue(reply);
        }
    }

    /// <summary>Serves <paramref name="content"/> at <c>GET /files/{id}/content</c> (e.g. a batch output file).</summary>
    /// <param name="id">The file id, e.g. <c>file-batch-1</c>.</param>
    /// <param name="content">The file's bytes as text.</param>
    public void AddFile(string id, string content)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(content);
        _files[id] = Encoding.UTF8.GetBytes(content);
    }

    /// <summary>
    /// A Batch API output file in the real wire format (JSON Lines): one line per request, each
    /// with its <c>custom_id</c> and a chat completion body carrying the given usage.
    /// </summary>
    /// <param name="requests">The requests: custom id, model, usage.</param>
    /// <returns>The file's text.</returns>
    public static string BatchOutputFile(params (string CustomId, string Model, FakeUsage Usage)[] requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        var text = new StringBuilder();
        for (var i = 0; i < requests.Length; i++)
        {
            var (customId, model, usage) = requests[i];
            text.Append(FakeWire.BatchOutputLine(customId, "batch_req_fake" + (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), new FakeReply { Usage = usage }, model)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Forgets the request log and any enqueued replies.</summary>
    public void Reset()
    {
        _script.Clear();
        _requests.Clear();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var request = await ReadRequestAsync(ctx.Request).ConfigureAwait(false);
        _requests.Enqueue(request);
        var reply = _script.TryDequeue(out var scripted) ? scripted : Responder?.Invoke(request) ?? DefaultReply;
        var ct = ctx.RequestAborted;
        var id = reply.Id ?? Interlocked.Increment(ref _sequence).ToString(System.Globalization.CultureInfo.InvariantCulture);

        if (reply.Delay > TimeSpan.Zero)
        {
            await Task.Delay(reply.Delay, ct).ConfigureAwait(false);
        }

        if (reply.Kind == FakeReplyKind.DropConnection)
        {
            ctx.Abort();
            return;
        }

        if (reply.Kind == FakeReplyKind.HttpError)
        {
            ctx.Response.StatusCode = reply.StatusCode;
            if (reply.RetryAfter is { } retryAfter)
            {
                ctx.Response.Headers["retry-after-ms"] = ((long)retryAfter.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
                ctx.Response.Headers["retry-after"] = ((long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.WriteAsync(FakeWire.Error(reply, request), ct).ConfigureAwait(false);
            return;
        }

        if (reply.Kind == FakeReplyKind.MalformedJson)
        {
            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.WriteAsync("{\"id\":\"chatcmpl-broken\",\"choices\":[{"u8.ToArray(), ct).ConfigureAwait(false);
            return;
        }

        var path = request.Path;
        if (request.Method == "GET")
        {
            var fileId = path.EndsWith("/content", StringComparison.Ordinal) && path.Contains("/files/", StringComparison.Ordinal)
                ? path[(path.IndexOf("/files/", StringComparison.Ordinal) + 7)..^8]
                : null;
            if (fileId is not null && _files.TryGetValue(fileId, out var file))
            {
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "application/octet-stream";
                await ctx.Response.Body.WriteAsync(file, ct).ConfigureAwait(false);
            }
            else
            {
                ctx.Response.StatusCode = 404;
                ctx.Response.ContentType = "application/json";
                await ctx.Response.Body.WriteAsync(FakeWire.Error(reply with { StatusCode = 404 }, request), ct).ConfigureAwait(false);
            }

            return;
        }

        var json = request.Json;
        var stream = json?["stream"]?.GetValueKind() == JsonValueKind.True;
        var model = reply.Model ?? request.Model ?? "gpt-4o-mini";

        if (path.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            if (stream)
            {
                var includeUsage = json?["stream_options"]?["include_usage"]?.GetValueKind() == JsonValueKind.True;
                await StreamAsync(ctx, FakeWire.ChatChunks(reply, model, id, includeUsage), reply, ct).ConfigureAwait(false);
            }
            else
            {
                await WriteJsonAsync(ctx, FakeWire.ChatCompletion(reply, model, id), ct).ConfigureAwait(false);
            }
        }
        else if (path.EndsWith("/responses", StringComparison.Ordinal))
        {
            if (stream)
            {
                await StreamAsync(ctx, FakeWire.ResponseEvents(reply, model, id), reply, ct).ConfigureAwait(false);
            }
            else
            {
                await WriteJsonAsync(ctx, FakeWire.Response(reply, model, id, "completed", includeUsage: reply.Kind != FakeReplyKind.MissingUsage), ct).ConfigureAwait(false);
            }
        }
        else if (path.EndsWith("/embeddings", StringComparison.Ordinal))
        {
            await WriteJsonAsync(ctx, FakeWire.Embeddings(reply, model, json), ct).ConfigureAwait(false);
        }
        else if (path.Contains("/images/", StringComparison.Ordinal))
        {
            var imageModel = reply.Model ?? request.Model ?? "dall-e-2";
            var count = int.TryParse(request.Form.TryGetValue("n", out var n) ? n : json?["n"]?.ToString(), out var asked) ? Math.Max(1, asked) : 1;
            await WriteJsonAsync(ctx, FakeWire.Images(reply, imageModel, count), ct).ConfigureAwait(false);
        }
        else if (path.EndsWith("/audio/speech", StringComparison.Ordinal))
        {
            // Speech answers with the audio itself and no usage.
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "audio/mpeg";
            var audio = new byte[2048];
            "ID3"u8.CopyTo(audio);
            await ctx.Response.Body.WriteAsync(audio, ct).ConfigureAwait(false);
        }
        else if (path.EndsWith("/moderations", StringComparison.Ordinal))
        {
            await WriteJsonAsync(ctx, FakeWire.Moderation(reply.Model ?? request.Model ?? "omni-moderation-latest"), ct).ConfigureAwait(false);
        }
        else if (path.EndsWith("/audio/transcriptions", StringComparison.Ordinal) || path.EndsWith("/audio/translations", StringComparison.Ordinal))
        {
            await WriteJsonAsync(ctx, FakeWire.Transcription(reply), ct).ConfigureAwait(false);
        }
        else
        {
            ctx.Response.StatusCode = 404;
            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.WriteAsync(FakeWire.Error(reply with { StatusCode = 404 }, request), ct).ConfigureAwait(false);
        }
    }

    private static async Task WriteJsonAsync(HttpContext ctx, byte[] body, CancellationToken ct)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        ctx.Response.ContentLength = body.Length;
        await ctx.Response.Body.WriteAsync(body, ct).ConfigureAwait(false);
    }

    private static async Task StreamAsync(HttpContext ctx, IEnumerable<byte[]> events, FakeReply reply, CancellationToken ct)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream; charset=utf-8";
        ctx.Response.Headers.CacheControl = "no-cache";
        await ctx.Response.StartAsync(ct).ConfigureAwait(false);
        var sent = 0;
        foreach (var evt in events)
        {
            if (reply.Kind == FakeReplyKind.CutStream && sent >= reply.CutAfterChunks)
            {
                await ctx.Response.Body.FlushAsync(ct).ConfigureAwait(false);

                // Let the client read what was sent, so the cut surfaces while it reads the body.
                await Task.Delay(reply.ChunkDelay > TimeSpan.Zero ? reply.ChunkDelay : TimeSpan.FromMilliseconds(50), ct).ConfigureAwait(false);
                ctx.Abort();
                return;
            }

            if (sent > 0 && reply.ChunkDelay > TimeSpan.Zero)
            {
                await Task.Delay(reply.ChunkDelay, ct).ConfigureAwait(false);
            }

            await ctx.Response.Body.WriteAsync(evt, ct).ConfigureAwait(false);
            await ctx.Response.Body.FlushAsync(ct).ConfigureAwait(false);
            sent++;
        }
    }

    private static async Task<FakeRequest> ReadRequestAsync(HttpRequest request)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in request.Headers)
        {
            headers[key] = value.ToString();
        }

        var form = new Dictionary<string, string>(StringComparer.Ordinal);
        var body = string.Empty;
        if (request.HasFormContentType)
        {
            var fields = await request.ReadFormAsync().ConfigureAwait(false);
            foreach (var (key, value) in fields)
            {
                form[key] = value.ToString();
            }

            foreach (var file in fields.Files)
            {
                form["file:" + file.Name] = file.FileName + ":" + file.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        else
        {
            using var reader = new StreamReader(request.Body, Encoding.UTF8);
            body = await reader.ReadToEndAsync().ConfigureAwait(false);
        }

        return new FakeRequest(request.Method, request.Path.Value ?? "/", request.ContentType, body, form, headers);
    }
}
