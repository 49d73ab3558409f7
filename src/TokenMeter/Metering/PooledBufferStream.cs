using System.Buffers;

namespace TokenMeter.Metering;

/// <summary>
/// A write-only in-memory stream over arrays rented from <see cref="ArrayPool{T}.Shared"/>, or over one
/// array of the size the content said it has (a copy kept past the call); used to copy a request body once.
/// </summary>
internal sealed class PooledBufferStream : Stream
{
    private readonly int _limit;
    private byte[] _buffer;
    private int _length;
    private bool _pooled;

    /// <param name="initialCapacity">The bytes expected.</param>
    /// <param name="limit">The most bytes kept; beyond, the copy is marked <see cref="Overflowed"/>.</param>
    /// <param name="exact">Allocate an array of exactly <paramref name="initialCapacity"/> bytes (not pooled), for <see cref="ToOwnedArray"/>.</param>
    public PooledBufferStream(int initialCapacity, int limit, bool exact = false)
    {
        _limit = limit;
        _pooled = !exact;
        _buffer = exact ? new byte[initialCapacity] : ArrayPool<byte>.Shared.Rent(initialCapacity);
    }

    /// <summary>True when the content did not fit in the size limit (the copy is then incomplete).</summary>
    public bool Overflowed { get; private set; }

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    /// <summary>The bytes written as an array of their own: the buffer itself when it was allocated to the exact size written, else a copy.</summary>
    public byte[] ToOwnedArray() => !_pooled && _length == _buffer.Length ? _buffer : WrittenSpan.ToArray();

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _length;

    public override long Position { get => _length; set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Overflowed)
        {
            return;
        }

        if (_length + buffer.Length > _limit)
        {
            Overflowed = true;
            return;
        }

        if (_length + buffer.Length > _buffer.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + buffer.Length));
            _buffer.AsSpan(0, _length).CopyTo(bigger);
            if (_pooled)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = bigger;
            _pooled = true;
        }

        buffer.CopyTo(_buffer.AsSpan(_length));
        _length += buffer.Length;
    }

    public override void WriteByte(byte value) => Write([value]);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    protected override void Dispose(bool disposing)
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (_pooled && buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        _length = 0;
        base.Dispose(disposing);
    }
}
