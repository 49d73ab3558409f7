using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using MimeKit;
using SmtpServer;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace TokenMeter.Testing.Smtp;

/// <summary>A real SMTP server on 127.0.0.1 (SmtpServer package) that keeps every message it receives, parsed by MimeKit.</summary>
public sealed class LoopbackSmtpServer : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<MimeMessage> _messages = Channel.CreateUnbounded<MimeMessage>();
    private readonly Task _running;

    private LoopbackSmtpServer(int port)
    {
        Port = port;
        var options = new SmtpServerOptionsBuilder()
            .ServerName("localhost")
            .Endpoint(b => b.Endpoint(new IPEndPoint(IPAddress.Loopback, port)))
            .Build();
        var provider = new SmtpServer.ComponentModel.ServiceProvider();
        provider.Add(new Store(_messages.Writer));
        var server = new SmtpServer.SmtpServer(options, provider);
        _running = server.StartAsync(_stop.Token);
    }

    public int Port { get; }

    /// <summary>Every message received so far, in order.</summary>
    public List<MimeMessage> Received { get; } = [];

    public static LoopbackSmtpServer Start(int? port = null) => new(port ?? FreePort());

    /// <summary>A port the OS hands out now (the server binds it right after).</summary>
    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    /// <summary>Waits for the next message (10 s at most).</summary>
    public async Task<MimeMessage> NextAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var message = await _messages.Reader.ReadAsync(timeout.Token);
        Received.Add(message);
        return message;
    }

    /// <summary>Takes what has arrived without waiting.</summary>
    public int Drain()
    {
        var count = 0;
        while (_messages.Reader.TryRead(out var message))
        {
            Received.Add(message);
            count++;
        }

        return count;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _running;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }

    private sealed class Store(ChannelWriter<MimeMessage> writer) : MessageStore
    {
        public override async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, CancellationToken cancellationToken)
        {
            using var stream = new MemoryStream(buffer.ToArray());
            var message = await MimeMessage.LoadAsync(stream, cancellationToken);
            await writer.WriteAsync(message, cancellationToken);
            return SmtpResponse.Ok;
        }
    }
}
