using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Threading.Tasks.Sources;

namespace TokenMeter.Metering;

/// <summary>
/// Pass-through over a streamed (server-sent events) reply. Every byte goes to the caller
/// unchanged and at once; on the way, the bytes are only copied into one pooled buffer (no line
/// split, no search, no JSON on the caller's thread). When the stream ends, fails or is disposed
/// early, the call completes with those bytes: the usage (chat's last chunk, responses'
/// <c>response.completed</c>) is read from them off the caller's thread when the record is deferred
/// (see <see cref="MeteredCall.Resolve"/>), else at once; a stream without usage is estimated from the
/// text its data lines delivered (deltas of content, refusals and tool-call arguments). A stream
/// longer than <see cref="MaxKeptBytes"/> keeps its last part (the usage comes last).
/// </summary>
internal sealed class MeteredStream : Stream, IValueTaskSource<int>
{
    /// <summary>Bytes of a stream kept at most; beyond, the oldest lines are dropped.</summary>
    internal const int MaxKeptBytes = 16 * 1024 * 1024;

    private const int MaxLineLength = 4 * 1024 * 1024;
    private const int MaxDeliveredChars = 4 * 1024 * 1024;

    private readonly Stream _inner;
    private readonly MeteredCall _call;
    private readonly int _httpStatus;
    private byte[]? _kept;
    private int _keptLength;
    private int _ended;

    // A read the inner stream could not finish at once (most chunks of a stream over the network),
    // completed by OnInnerRead without an async method per read: see ReadAsync.
    private ManualResetValueTaskSourceCore<int> _read;
    private ConfiguredValueTaskAwaitable<int>.ConfiguredValueTaskAwaiter _innerRead;
    private Memory<byte> _readBuffer;
    private CancellationToken _readToken;
    private Action? _onInnerRead;

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

        if (!_call.Meter.CanDefer)
        {
            // Observers see the record when the stream ends: that read completes in the caller's async context.
            return AwaitRead(pending, buffer, cancellationToken);
        }

        // Nothing that runs when the stream ends needs the caller's async context (the record is
        // deferred): complete this read from a callback instead of an async method with its own frame.
        _read.Reset();
        _readBuffer = buffer;
        _readToken = cancellationToken;
        _innerRead = pending.ConfigureAwait(false).GetAwaiter();
        _innerRead.UnsafeOnCompleted(_onInnerRead ??= OnInnerRead);
        return new ValueTask<int>(this, _read.Version);
    }

    int IValueTaskSource<int>.GetResult(short token) => _read.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _read.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _read.OnCompleted(continuation, state, token, flags);

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

    private void OnInnerRead()
    {
        var buffer = _readBuffer;
        var awaiter = _innerRead;
        _readBuffer = default;
        _innerRead = default;
        int read;
        try
        {
            read = awaiter.GetResult();
        }
        catch (Exception ex)
        {
            Fail(ex, _readToken);
            _read.SetException(ex);
            return;
        }

        Observe(buffer.Span[..read]);

        // Last: the caller's continuation may run inline here and start the next read.
        _read.SetResult(read);
    }

    private void Observe(ReadOnlySpan<byte> chunk)
    {
        if (chunk.IsEmpty)
        {
            End(StreamEnd.Finished, default);
            return;
        }

        try
        {
            Keep(chunk);
        }
        catch (Exception)
        {
            // A metering bug must never reach the caller; the call is then recorded from what was kept.
        }
    }

    // One copy per read into a pooled buffer that doubles as needed; past the limit, the older half goes.
    private void Keep(ReadOnlySpan<byte> chunk)
    {
        if (Volatile.Read(ref _ended) != 0)
        {
            return;
        }

        var needed = _keptLength + chunk.Length;
        if (_kept is null || needed > _kept.Length)
        {
            if (needed > MaxKeptBytes && _kept is not null)
            {
                // Drop whole lines from the front until the rest and the chunk fit in half the limit.
                var drop = Math.Min(_keptLength, needed - (MaxKeptBytes / 2));
                var newline = _kept.AsSpan(drop, _keptLength - drop).IndexOf((byte)'\n');
                drop = newline < 0 ? _keptLength : drop + newline + 1;
                _kept.AsSpan(drop, _keptLength - drop).CopyTo(_kept);
                _keptLength -= drop;
                needed = _keptLength + chunk.Length;
                if (chunk.Length > MaxKeptBytes / 2)
                {
                    chunk = chunk[^(MaxKeptBytes / 2)..];
                    needed = _keptLength + chunk.Length;
                }
            }

            if (_kept is null || needed > _kept.Length)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _kept is null ? 4096 : _kept.Length * 2));
                if (_kept is not null)
                {
                    _kept.AsSpan(0, _keptLength).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(_kept);
                }

                _kept = bigger;
            }
        }

        chunk.CopyTo(_kept.AsSpan(_keptLength));
        _keptLength = needed;
    }

    /// <summary>
    /// Reads a stream's kept bytes: the usage of its last data line that reports one, whether it
    /// said <c>[DONE]</c>, and — without usage — the text it delivered (into the call, for the
    /// estimate). Returns how the call ended.
    /// </summary>
    /// <param name="call">The call.</param>
    /// <param name="kept">The bytes of the stream (or its last part).</param>
    /// <param name="end">How reading the stream ended.</param>
    /// <param name="failure">The status of a stream whose read failed.</param>
    /// <param name="usage">Filled with the usage found.</param>
    /// <returns>The call's status, before estimation.</returns>
    internal static UsageStatus ReadKept(MeteredCall call, ReadOnlySpan<byte> kept, StreamEnd end, UsageStatus failure, ref ParsedUsage usage)
    {
        var sawDone = false;
        var lines = kept;
        while (!lines.IsEmpty)
        {
            var newline = lines.IndexOf((byte)'\n');
            if (newline < 0)
            {
                // A last line without its end: the stream broke off inside it.
                break;
            }

            var line = lines[..newline];
            lines = lines[(newline + 1)..];
            if (line.Length > MaxLineLength || !line.StartsWith("data:"u8))
            {
                continue;
            }

            var payload = line[5..].Trim((byte)' ').TrimEnd((byte)'\r');
            if (payload.SequenceEqual("[DONE]"u8))
            {
                sawDone = true;
                continue;
            }

            var at = payload.IndexOf("\"usage\":"u8);
            var value = at < 0 ? default : payload[(at + 8)..].TrimStart((byte)' ');
            if (value.IsEmpty || value[0] != (byte)'{')
            {
                // "usage":null on every chat chunk but the last.
                continue;
            }

            var parsed = default(ParsedUsage);
            if (UsageParser.TryParse(payload, ref parsed) && parsed.HasUsage)
            {
                usage = parsed;
            }
        }

        if (usage.HasUsage)
        {
            return UsageStatus.Ok;
        }

        if (call.EstimateMissingUsage)
        {
            call.DeliveredText = DeliveredText(kept);
        }

        return end switch
        {
            StreamEnd.Failed => failure,
            StreamEnd.Abandoned when !sawDone => UsageStatus.Cancelled,
            _ => UsageStatus.UsageMissing,
        };
    }

    // Chat chunks carry delta.content / refusal / tool_calls[].function.arguments; responses events carry "delta".
    private static string? DeliveredText(ReadOnlySpan<byte> lines)
    {
        StringBuilder? text = null;
        while (!lines.IsEmpty)
        {
            var end = lines.IndexOf((byte)'\n');
            var line = end < 0 ? lines : lines[..end];
            lines = end < 0 ? default : lines[(end + 1)..];
            if (line.Length > MaxLineLength || !line.StartsWith("data:"u8))
            {
                continue;
            }

            var payload = line[5..].Trim((byte)' ').TrimEnd((byte)'\r');
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
        End(StreamEnd.Failed, status);
    }

    private void Finish(bool abandoned) => End(abandoned ? StreamEnd.Abandoned : StreamEnd.Finished, default);

    private void End(StreamEnd end, UsageStatus failure)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
        {
            return;
        }

        var kept = _kept;
        _kept = null;
        _call.CompleteStream(Tail(kept, _keptLength, end, failure), _httpStatus);
    }

    /// <summary>
    /// A stream that reports its usage needs only its lines from the one with the last <c>"usage":{</c>
    /// on (found from the end, without reading the lines before): those are copied out and the pooled
    /// buffer goes back to the pool on this thread, where the next stream rents it again. A stream
    /// without usage keeps everything (its delivered text is estimated).
    /// </summary>
    private static KeptStream Tail(byte[]? kept, int length, StreamEnd end, UsageStatus failure)
    {
        if (kept is null)
        {
            return new KeptStream(null, 0, end, failure);
        }

        var bytes = kept.AsSpan(0, length);
        var at = bytes.LastIndexOf("\"usage\":"u8);
        if (at < 0 || bytes[(at + 8)..].TrimStart((byte)' ') is not [(byte)'{', ..])
        {
            return new KeptStream(kept, length, end, failure, Pooled: true);
        }

        var start = bytes[..at].LastIndexOf((byte)'\n') + 1;
        var tail = bytes[start..].ToArray();
        ArrayPool<byte>.Shared.Return(kept);
        return new KeptStream(tail, tail.Length, end, failure);
    }
}

/// <summary>How reading a metered stream ended.</summary>
internal enum StreamEnd
{
    /// <summary>Read to its end.</summary>
    Finished,

    /// <summary>Disposed before its end.</summary>
    Abandoned,

    /// <summary>A read failed.</summary>
    Failed,
}

/// <summary>What a metered stream kept: its bytes (when pooled, returned by <see cref="Release"/>) and how it ended.</summary>
internal readonly record struct KeptStream(byte[]? Buffer, int Length, StreamEnd End, UsageStatus Failure, bool Pooled = false)
{
    public ReadOnlySpan<byte> Bytes => Buffer is null ? default : Buffer.AsSpan(0, Length);

    /// <summary>Reads the usage, the status and (without usage) the delivered text; see <see cref="MeteredStream.ReadKept"/>.</summary>
    public UsageStatus Read(MeteredCall call, ref ParsedUsage usage) => MeteredStream.ReadKept(call, Bytes, End, Failure, ref usage);

    public void Release()
    {
        if (Pooled && Buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(Buffer);
        }
    }
}
