using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace TokenMeter.Metering;

/// <summary>
/// Pass-through over a streamed (server-sent events) reply. Every byte goes to the caller
/// unchanged and at once; on the way, <c>data:</c> lines that carry a non-null <c>"usage":</c>
/// are parsed (chat's last chunk, responses' <c>response.completed</c>), and the other data lines
/// are copied as they are into one pooled buffer, so that a stream cut before its usage is recorded
/// with its delivered text (deltas of content, refusals and tool-call arguments) counted by the
/// tokenizer. Those lines are read only when the stream ends without usage: a stream that reports
/// its usage (nearly all) pays one copy per line, never a JSON read or a string. A line split
/// across two reads is copied into a pooled buffer. The call is recorded when the stream ends,
/// fails, or is disposed early.
/// </summary>
internal sealed class MeteredStream : Stream
{
    private const int MaxLineLength = 4 * 1024 * 1024;
    private const int MaxDeliveredChars = 4 * 1024 * 1024;
    private const int MaxDeliveredBytes = 16 * 1024 * 1024;

    private readonly Stream _inner;
    private readonly MeteredCall _call;
    private readonly int _httpStatus;
    private byte[]? _line;
    private int _lineLength;
    private bool _lineOverflow;
    private bool _sawDone;
    private ParsedUsage _usage;
    private PooledBufferStream? _delivered;

    public MeteredStream(Stream inner, MeteredCall call, int httpStatus)
    {
        _inner = inner;
        _call = call;
        _httpStatus = httpStatus;
    }

    public override bool CanRead => _inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override bool CanTimeout => _inner.CanTimeout;

    public override int ReadTimeout { get => _inner.ReadTimeout; set => _inner.ReadTimeout = value; }

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int read;
        try
        {
            read = _inner.Read(buffer);
        }
        catch (Exception ex)
        {
            Fail(ex, CancellationToken.None);
            throw;
        }

        Observe(buffer[..read]);
        return read;
    }

    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 0 ? -1 : one[0];
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ValueTask<int> pending;
        try
        {
            pending = _inner.ReadAsync(buffer, cancellationToken);
        }
        catch (Exception ex)
        {
            Fail(ex, cancellationToken);
            throw;
        }

        if (pending.IsCompletedSuccessfully)
        {
            var read = pending.Result;
            Observe(buffer.Span[..read]);
            return new ValueTask<int>(read);
        }

        return AwaitRead(pending, buffer, cancellationToken);
    }

    public override async ValueTask DisposeAsync()
    {
        Finish(abandoned: true);
        await _inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Finish(abandoned: true);
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    // Pooled: a streamed reply waits on most of its reads, and each wait would otherwise box a state machine.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> AwaitRead(ValueTask<int> pending, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int read;
        try
        {
            read = await pending.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Fail(ex, cancellationToken);
            throw;
        }

        Observe(buffer.Span[..read]);
        return read;
    }

    private void Observe(ReadOnlySpan<byte> chunk)
    {
        if (chunk.IsEmpty)
        {
            Finish(abandoned: false);
            return;
        }

        try
        {
            Scan(chunk);
        }
        catch (Exception)
        {
            // A scanning bug must never reach the caller; the call is then recorded without usage.
            _lineLength = 0;
        }
    }

    private void Scan(ReadOnlySpan<byte> chunk)
    {
        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            if (newline < 0)
            {
                Append(chunk);
                return;
            }

            if (_lineLength == 0 && !_lineOverflow)
            {
                HandleLine(chunk[..newline]);
            }
            else
            {
                Append(chunk[..newline]);
                if (!_lineOverflow)
                {
                    HandleLine(_line.AsSpan(0, _lineLength));
                }

                _lineLength = 0;
                _lineOverflow = false;
            }

            chunk = chunk[(newline + 1)..];
        }
    }

    private void Append(ReadOnlySpan<byte> part)
    {
        if (_lineOverflow)
        {
            return;
        }

        // Only data lines matter; anything else is not kept.
        if (_lineLength == 0 && part.Length >= 5 && !part.StartsWith("data:"u8))
        {
            _lineOverflow = true;
            return;
        }

        var needed = _lineLength + part.Length;
        if (needed > MaxLineLength)
        {
            _lineOverflow = true;
            return;
        }

        if (_line is null || needed > _line.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 1024));
            if (_line is not null)
            {
                _line.AsSpan(0, _lineLength).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_line);
            }

            _line = bigger;
        }

        part.CopyTo(_line.AsSpan(_lineLength));
        _lineLength = needed;
    }

    private void HandleLine(ReadOnlySpan<byte> line)
    {
        if (!line.StartsWith("data:"u8))
        {
            return;
        }

        var payload = line[5..].Trim((byte)' ').TrimEnd((byte)'\r');
        if (payload.SequenceEqual("[DONE]"u8))
        {
            _sawDone = true;
            return;
        }

        var at = payload.IndexOf("\"usage\":"u8);
        var value = at < 0 ? default : payload[(at + 8)..].TrimStart((byte)' ');
        if (value.IsEmpty || value[0] != (byte)'{')
        {
            // No usage here ("usage":null on every chat chunk but the last): text on its way to the caller.
            if (_call.EstimateMissingUsage && !_usage.HasUsage)
            {
                CollectDelivered(payload);
            }

            return;
        }

        var parsed = default(ParsedUsage);
        if (UsageParser.TryParse(payload, ref parsed) && parsed.HasUsage)
        {
            _usage = parsed;
        }
    }

    // Kept raw, one line each; read by DeliveredText only if the stream ends without usage.
    private void CollectDelivered(ReadOnlySpan<byte> payload)
    {
        var kept = _delivered ??= new PooledBufferStream(4096, MaxDeliveredBytes);
        kept.Write(payload);
        kept.Write("\n"u8);
    }

    // Chat chunks carry delta.content / refusal / tool_calls[].function.arguments; responses events carry "delta".
    private static string? DeliveredText(ReadOnlySpan<byte> lines)
    {
        StringBuilder? text = null;
        while (!lines.IsEmpty)
        {
            var end = lines.IndexOf((byte)'\n');
            var payload = end < 0 ? lines : lines[..end];
            lines = end < 0 ? default : lines[(end + 1)..];
            if (payload.IndexOf("\"content\":\""u8) < 0 && payload.IndexOf("\"delta\":\""u8) < 0
                && payload.IndexOf("\"arguments\":\""u8) < 0 && payload.IndexOf("\"refusal\":\""u8) < 0)
            {
                continue;
            }

            try
            {
                Collect(payload, ref text);
            }
            catch (JsonException)
            {
                // Not a JSON event: nothing delivered to count.
            }
        }

        return text?.ToString();
    }

    private static void Collect(ReadOnlySpan<byte> payload, ref StringBuilder? text)
    {
        var reader = new Utf8JsonReader(payload);
        var take = false;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName)
            {
                take = reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("delta"u8)
                    || reader.ValueTextEquals("refusal"u8) || reader.ValueTextEquals("arguments"u8);
                continue;
            }

            if (take && reader.TokenType == JsonTokenType.String)
            {
                text ??= new StringBuilder();
                if (text.Length < MaxDeliveredChars)
                {
                    text.Append(reader.GetString());
                }
            }

            take = false;
        }
    }

    private void Fail(Exception exception, CancellationToken cancellationToken)
    {
        var status = exception is OperationCanceledException || cancellationToken.IsCancellationRequested
            ? UsageStatus.Cancelled
            : UsageStatus.TransportError;
        Complete(_usage.HasUsage ? UsageStatus.Ok : status);
    }

    private void Finish(bool abandoned)
    {
        UsageStatus status;
        if (_usage.HasUsage)
        {
            status = UsageStatus.Ok;
        }
        else if (abandoned && !_sawDone)
        {
            status = UsageStatus.Cancelled;
        }
        else
        {
            status = UsageStatus.UsageMissing;
        }

        Complete(status);
    }

    private void Complete(UsageStatus status)
    {
        if (Interlocked.Exchange(ref _delivered, null) is { } delivered)
        {
            if (!_usage.HasUsage)
            {
                _call.DeliveredText = DeliveredText(delivered.WrittenSpan);
            }

            delivered.Dispose();
        }

        _call.Complete(_usage, status, _httpStatus);
        var line = Interlocked.Exchange(ref _line, null);
        if (line is not null)
        {
            ArrayPool<byte>.Shared.Return(line);
        }
    }
}
