using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TokenMeter.AspNetCore.Tests.Hosting;

/// <summary>A real HTTP server on 127.0.0.1 (port chosen by the OS) that records webhook POSTs.</summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _failuresLeft;

    private WebhookReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<Received> Deliveries { get; } = new();

    public int Attempts;

    public Uri Url { get; private set; } = null!;

    /// <summary>The clock each attempt is stamped with (the app's fake clock in tests that set it).</summary>
    public Func<DateTimeOffset> Clock { get; set; } = () => DateTimeOffset.UtcNow;

    /// <summary>When each attempt arrived, by <see cref="Clock"/>.</summary>
    public ConcurrentQueue<DateTimeOffset> AttemptTimes { get; } = new();

    /// <param name="failFirst">How many attempts are answered 503.</param>
    /// <param name="retryAfterSeconds">A <c>Retry-After</c> sent with each 503, if any.</param>
    public static async Task<WebhookReceiver> StartAsync(int failFirst = 0, int? retryAfterSeconds = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app) { _failuresLeft = failFirst };
        app.MapPost("/hook", async (HttpContext http) =>
        {
            Interlocked.Increment(ref receiver.Attempts);
            receiver.AttemptTimes.Enqueue(receiver.Clock());
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer);
            if (Interlocked.Decrement(ref receiver._failuresLeft) >= 0)
            {
                if (retryAfterSeconds is { } seconds)
                {
                    http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                return Results.StatusCode(503);
            }

            receiver.Deliveries.Enqueue(new Received(
                http.Request.Headers["X-TokenMeter-Event"].ToString(),
                http.Request.Headers["X-TokenMeter-Signature"].ToString(),
                buffer.ToArray()));
            return Results.Ok();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = new Uri(address + "/hook");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    internal sealed record Received(string Event, string Signature, byte[] Body);
}
