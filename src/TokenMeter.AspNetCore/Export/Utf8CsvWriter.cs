using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using CsvHelper;

namespace TokenMeter.AspNetCore.Export;

/// <summary>
/// Writes CSV rows as UTF-8 straight into a pooled buffer and hands them to a <see cref="PipeWriter"/>
/// in blocks: numbers, GUIDs and timestamps are formatted in place, plain text is copied without a
/// per-cell string or scan by a general writer. The output is byte for byte what the export's
/// CsvHelper options write (<see cref="CsvExportResult.Options"/>): any text cell that is not plain
/// printable ASCII (needs quotes, starts like a formula, has a space at either end, is empty or not
/// ASCII) and any value outside the common shapes is written by CsvHelper itself.
/// </summary>
internal sealed class Utf8CsvWriter : IDisposable
{
    /// <summary>Printable ASCII but the separator and the quote: text made only of these is written as is.</summary>
    private static readonly SearchValues<char> PlainChars = SearchValues.Create(
        " !#$%&'()*+-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    /// <summary>The same characters as UTF-8 bytes (text made only of them is ASCII and written as is).</summary>
    private static readonly SearchValues<byte> PlainBytes = SearchValues.Create(
        " !#$%&'()*+-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"u8);

    private readonly PipeWriter _output;
    private readonly CellFallback _fallback = new();
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
    private int _length;
    private bool _rowStarted;

    public Utf8CsvWriter(PipeWriter output)
    {
        _output = output;
    }

    /// <summary>Whether CsvHelper would write <paramref name="value"/> exactly as its characters.</summary>
    public static bool IsPlain(ReadOnlySpan<char> value)
        => value.Length > 0
        && !value.ContainsAnyExcept(PlainChars)
        && value[0] is not ('=' or '@' or '+' or '-' or ' ')
        && value[^1] != ' ';

    /// <summary>Whether CsvHelper would write the text of these UTF-8 bytes exactly as they are.</summary>
    public static bool IsPlain(ReadOnlySpan<byte> value)
        => value.Length > 0
        && !value.ContainsAnyExcept(PlainBytes)
        && value[0] is not ((byte)'=' or (byte)'@' or (byte)'+' or (byte)'-' or (byte)' ')
        && value[^1] != (byte)' ';

    /// <summary>The cell as this writer writes it: for values repeated on many rows, encoded once.</summary>
    public byte[] Encode(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return [];
        }

        return IsPlain(value) ? Encoding.ASCII.GetBytes(value) : _fallback.Text(value).ToArray();
    }

    public void WriteHeader(IReadOnlyList<string> names)
    {
        foreach (var name in names)
        {
            WriteText(name);
        }

        EndRow();
    }

    public void WriteText(string? value)
    {
        if (value is null)
        {
            Separator();
            return;
        }

        if (!IsPlain(value))
        {
            WriteEncoded(_fallback.Text(value));
            return;
        }

        var span = Reserve(value.Length + 1);
        System.Text.Ascii.FromUtf16(value, span, out var written);
        _length += written;
    }

    /// <summary>A text cell given as UTF-8 (a column as stored): the same bytes as <see cref="WriteText"/> of its string.</summary>
    public void WriteUtf8Text(ReadOnlySpan<byte> value, bool isNull)
    {
        if (isNull)
        {
            Separator();
        }
        else if (IsPlain(value))
        {
            WriteEncoded(value);
        }
        else
        {
            WriteText(Encoding.UTF8.GetString(value));
        }
    }

    /// <summary>A cell already encoded by <see cref="Encode"/>.</summary>
    public void WriteEncoded(ReadOnlySpan<byte> cell)
    {
        var span = Reserve(cell.Length + 1);
        cell.CopyTo(span);
        _length += cell.Length;
    }

    public void WriteGuid(Guid value)
    {
        var span = Reserve(40);
        value.TryFormat(span, out var written);
        _length += written;
    }

    public void WriteInt64(long value)
    {
        var span = Reserve(24);
        value.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
        _length += written;
    }

    /// <summary>The detailed export's token counts and cost, in its column order.</summary>
    public void WriteTokensAndCost(long input, long cachedInput, long cacheWrite, long output, long reasoning, long total, decimal? costUsd)
    {
        WriteInt64(input);
        WriteInt64(cachedInput);
        WriteInt64(cacheWrite);
        WriteInt64(output);
        WriteInt64(reasoning);
        WriteInt64(total);
        WriteDecimal(costUsd);
    }

    public void WriteInt32(int? value)
    {
        var span = Reserve(16);
        if (value is { } v)
        {
            v.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
            _length += written;
        }
    }

    public void WriteDecimal(decimal? value)
    {
        var span = Reserve(48);
        if (value is { } v)
        {
            v.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
            _length += written;
        }
    }

    public void WriteBoolean(bool value) => WriteEncoded(value ? "True"u8 : "False"u8);

    public void WriteTimestamp(DateTimeOffset value)
    {
        var span = Reserve(CsvCells.MaxLength + 1);
        if (CsvCells.TryFormatUtcTimestamp(value, span, out var written))
        {
            _length += written;
        }
        else
        {
            WriteEncodedAfterSeparator(_fallback.Timestamp(value));
        }
    }

    public void WriteTimestamp(DateTimeOffset? value)
    {
        if (value is { } v)
        {
            WriteTimestamp(v);
        }
        else
        {
            Separator();
        }
    }

    /// <summary>A duration in milliseconds, rounded to thousandths.</summary>
    public void WriteThousandths(double value)
    {
        var span = Reserve(CsvCells.MaxLength + 1);
        if (CsvCells.TryFormatThousandths(value, span, out var written))
        {
            _length += written;
        }
        else
        {
            WriteEncodedAfterSeparator(_fallback.Number(Math.Round(value, 3)));
        }
    }

    public void EndRow()
    {
        var span = EnsureRoom(2);
        span[0] = (byte)'\r';
        span[1] = (byte)'\n';
        _length += 2;
        _rowStarted = false;
    }

    /// <summary>Hands the buffered rows to the pipe and flushes it (waits while the client is behind).</summary>
    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        Drain();
        var result = await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            _fallback.Dispose();
        }
    }

    private void Separator()
    {
        var span = EnsureRoom(1);
        if (_rowStarted)
        {
            span[0] = (byte)',';
            _length++;
        }

        _rowStarted = true;
    }

    /// <summary>Writes the separator (when not the first cell) and returns room for at least <paramref name="size"/> - 1 more bytes.</summary>
    private Span<byte> Reserve(int size)
    {
        var span = EnsureRoom(size);
        if (_rowStarted)
        {
            span[0] = (byte)',';
            _length++;
            span = span[1..];
        }

        _rowStarted = true;
        return span;
    }

    /// <summary>After <see cref="Reserve"/> took the separator, a cell of any length.</summary>
    private void WriteEncodedAfterSeparator(ReadOnlySpan<byte> cell)
    {
        var span = EnsureRoom(cell.Length);
        cell.CopyTo(span);
        _length += cell.Length;
    }

    private Span<byte> EnsureRoom(int size)
    {
        if (_buffer.Length - _length < size)
        {
            Drain();
            if (_buffer.Length < size)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = ArrayPool<byte>.Shared.Rent(size);
            }
        }

        return _buffer.AsSpan(_length);
    }

    private void Drain()
    {
        if (_length > 0)
        {
            _output.Write(_buffer.AsSpan(0, _length));
            _length = 0;
        }
    }

    /// <summary>
    /// The cells this writer does not format itself, written by CsvHelper with the export's options
    /// as the second cell of a record (so an empty value is not the quoted lone field of a record).
    /// </summary>
    private sealed class CellFallback : IDisposable
    {
        private readonly MemoryStream _stream = new();
        private readonly CsvWriter _csv;

        public CellFallback()
        {
            _csv = CsvWriter.Create(_stream, CsvExportResult.Options, leaveOpen: true);
        }

        public ReadOnlySpan<byte> Text(string value)
        {
            Start();
            _csv.WriteField(value);
            return End();
        }

        public ReadOnlySpan<byte> Timestamp(DateTimeOffset value)
        {
            Start();
            _csv.WriteField(value, default);
            return End();
        }

        public ReadOnlySpan<byte> Number(double value)
        {
            Start();
            _csv.WriteField(value, default);
            return End();
        }

        public void Dispose()
        {
            _csv.Dispose();
            _stream.Dispose();
        }

        private void Start()
        {
            _stream.SetLength(0);
            _csv.WriteField("x");
        }

        private ReadOnlySpan<byte> End()
        {
            _csv.EndRecord();
            _csv.Flush();
            var written = _stream.GetBuffer().AsSpan(0, (int)_stream.Length);

            // "x," before, CR LF after.
            return written[2..^2];
        }
    }
}
