using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using Npgsql;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;

namespace TokenMeter.Postgres.Querying;

/// <summary>
/// The detailed export's rows as PostgreSQL sends them: <c>COPY (SELECT ...) TO STDOUT (FORMAT BINARY)</c>
/// read as raw bytes into a pooled block and parsed in place, so a row costs no <see cref="UsageRecord"/>,
/// no string per text cell and no per-column reader call (Npgsql's per-column reads were most of the
/// export's CPU). COPY takes no bind parameters: the range and user travel as transaction-local
/// settings set by a parameterized <c>set_config</c>, which the query reads with <c>current_setting</c>.
/// </summary>
internal static class PostgresExportRows
{
    /// <summary>The columns read, in this order (what the CSV writes; see <see cref="UsageExportRow"/>).</summary>
    internal const string Columns =
        "id, created_at, user_id, endpoint, operation, request_model, model, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
        + "reasoning_tokens, total_tokens, cost_usd, price_id, duration_ms, status, http_status, streaming, session_id, problem_id, metadata, cost_source";

    private const int ColumnCount = 23;

    /// <summary>Bytes of rows per block: about 1,800 rows of the usual shape.</summary>
    private const int BlockBytes = 512 * 1024;

    /// <summary>Read until at most this much room is left in the block before handing it over.</summary>
    private const int ReadSlack = 16 * 1024;

    // "PGCOPY\n", 0xFF, "\r\n", 0.
    private static ReadOnlySpan<byte> Signature => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    public static async IAsyncEnumerable<UsageExportBlock> ReadAsync(PostgresStoreContext context, UsageExportQuery query, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var connection = await context.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var transactionScope = transaction.ConfigureAwait(false);
        var where = await SetFilterAsync(connection, query, context.CommandTimeout, cancellationToken).ConfigureAwait(false);
        var copy = await connection.BeginRawBinaryCopyAsync(
            $"COPY (SELECT {Columns} FROM {context.Quoted}.user_api_usage{where} ORDER BY created_at, id) TO STDOUT (FORMAT BINARY)",
            cancellationToken).ConfigureAwait(false);
        var complete = false;
        var block = new Block();
        try
        {
            await block.ReadHeaderAsync(copy, cancellationToken).ConfigureAwait(false);
            while (await block.FillAsync(copy, cancellationToken).ConfigureAwait(false))
            {
                yield return block;
            }

            complete = true;
        }
        finally
        {
            block.Dispose();
            if (!complete)
            {
                // Disposing an unfinished COPY would read the rest of it: stop PostgreSQL first.
                await CancelQuietlyAsync(copy).ConfigureAwait(false);
            }

            await copy.DisposeAsync().ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task CancelQuietlyAsync(NpgsqlRawCopyStream copy)
    {
        try
        {
            await copy.CancelAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The export is failing or was abandoned already; the connection is discarded if broken.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>Sets the export's range and user as transaction-local settings; returns the WHERE clause that reads them.</summary>
    private static async Task<string> SetFilterAsync(NpgsqlConnection connection, UsageExportQuery query, int timeout, CancellationToken cancellationToken)
    {
        var conditions = new List<string>();
        var settings = new List<string>();
        var command = connection.CreateCommand();
        await using var commandScope = command.ConfigureAwait(false);
        command.CommandTimeout = timeout;
        void Set(string name, string value, string condition)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
            settings.Add($"set_config('tokenmeter.export_{name}', ${command.Parameters.Count}, true)");
            conditions.Add(condition);
        }

        if (query.From is DateOnly from)
        {
            Set("from", Timestamp(from), "created_at >= current_setting('tokenmeter.export_from')::timestamptz");
        }

        if (query.To is DateOnly to)
        {
            Set("to", Timestamp(to.AddDays(1)), "created_at < current_setting('tokenmeter.export_to')::timestamptz");
        }

        if (query.UserId is string user)
        {
            Set("user", user, "user_id = (current_setting('tokenmeter.export_user') COLLATE \"C\")");
        }

        if (conditions.Count == 0)
        {
            return string.Empty;
        }

        command.CommandText = "SELECT " + string.Join(", ", settings);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return " WHERE " + string.Join(" AND ", conditions);
    }

    private static string Timestamp(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + " 00:00:00+00";

    /// <summary>A pooled buffer of whole rows of the binary COPY stream, parsed where they lie.</summary>
    private sealed class Block : UsageExportBlock, IDisposable
    {
        // 2000-01-01T00:00:00Z, PostgreSQL's epoch, in .NET ticks.
        private const long PostgresEpochTicks = 630_822_816_000_000_000;

        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BlockBytes);
        private int _start;
        private int _end;
        private int _filled;
        private bool _finished;

        public override bool TryRead(ref int position, out UsageExportRow row)
        {
            row = default;
            var rows = _buffer.AsSpan(_start, _end - _start);
            if (position >= rows.Length)
            {
                return false;
            }

            var span = rows[position..];
            if (BinaryPrimitives.ReadInt16BigEndian(span) != ColumnCount)
            {
                throw new InvalidDataException("Unexpected column count in the export's COPY stream.");
            }

            var at = 2;
            row.Id = new Guid(Field(span, ref at, out _), bigEndian: true);
            row.CreatedAt = Timestamp(Field(span, ref at, out _));
            row.UserId = Text(span, ref at);
            row.Endpoint = Text(span, ref at);
            row.Operation = Text(span, ref at);
            row.RequestModel = Text(span, ref at);
            row.Model = Text(span, ref at);
            row.InputTokens = Int64(span, ref at);
            row.CachedInputTokens = Int64(span, ref at);
            row.CacheWriteTokens = Int64(span, ref at);
            row.OutputTokens = Int64(span, ref at);
            row.ReasoningTokens = Int64(span, ref at);
            row.TotalTokens = Int64(span, ref at);
            var cost = Field(span, ref at, out var costIsNull);
            row.CostUsd = costIsNull ? null : Numeric(cost);
            row.PriceId = Text(span, ref at);
            row.DurationMs = BinaryPrimitives.ReadDoubleBigEndian(Field(span, ref at, out _));
            row.Status = Text(span, ref at);
            var http = Field(span, ref at, out var httpIsNull);
            row.HttpStatus = httpIsNull ? null : BinaryPrimitives.ReadInt32BigEndian(http);
            row.Streaming = Field(span, ref at, out _)[0] != 0;
            row.SessionId = Text(span, ref at);
            row.ProblemId = Text(span, ref at);
            var metadata = Field(span, ref at, out var metadataIsNull);

            // jsonb's binary form is a version byte (1) and the JSON text.
            row.Metadata = new Utf8Column(metadataIsNull ? default : metadata[1..], metadataIsNull);
            row.CostSource = Text(span, ref at);
            position += at;
            return true;
        }

        public override bool TryReadUserId(ref int position, out Utf8Column userId)
        {
            userId = default;
            var rows = _buffer.AsSpan(_start, _end - _start);
            if (position >= rows.Length)
            {
                return false;
            }

            var span = rows[position..];
            var at = 2;
            Field(span, ref at, out _);
            Field(span, ref at, out _);
            userId = Text(span, ref at);
            for (var i = 3; i < ColumnCount; i++)
            {
                Field(span, ref at, out _);
            }

            position += at;
            return true;
        }

        public override IReadOnlyDictionary<string, string>? ParseMetadata(ReadOnlySpan<byte> metadata) =>
            PostgresUsageQueries.ParseTags(metadata)?.AsReadOnly();

        public async Task ReadHeaderAsync(NpgsqlRawCopyStream copy, CancellationToken cancellationToken)
        {
            // Signature, flags, header extension length, then the extension.
            await EnsureAsync(copy, Signature.Length + 8, cancellationToken).ConfigureAwait(false);
            if (!_buffer.AsSpan(0, Signature.Length).SequenceEqual(Signature))
            {
                throw new InvalidDataException("The export's COPY stream is not in PostgreSQL's binary format.");
            }

            var extension = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(Signature.Length + 4));
            await EnsureAsync(copy, Signature.Length + 8 + extension, cancellationToken).ConfigureAwait(false);
            _start = _end = Signature.Length + 8 + extension;
        }

        /// <summary>Moves to the next block of whole rows; false at the end of the stream.</summary>
        public async Task<bool> FillAsync(NpgsqlRawCopyStream copy, CancellationToken cancellationToken)
        {
            // Keep the part of a row the last block ended in, at the front.
            var leftover = _filled - _end;
            _buffer.AsSpan(_end, leftover).CopyTo(_buffer);
            _filled = leftover;
            _start = _end = 0;
            if (_finished)
            {
                return false;
            }

            while (true)
            {
                while (_filled < _buffer.Length - ReadSlack)
                {
                    var read = await copy.ReadAsync(_buffer.AsMemory(_filled), cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    _filled += read;
                }

                _end = WholeRows(_buffer.AsSpan(0, _filled), out var trailer);
                if (trailer)
                {
                    _finished = true;
                    _filled = _end;
                    return _end > 0;
                }

                if (_end > 0)
                {
                    return true;
                }

                if (_filled < _buffer.Length - ReadSlack)
                {
                    throw new InvalidDataException("The export's COPY stream ended inside a row.");
                }

                // One row larger than the block: a bigger block.
                var bigger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
                _buffer.AsSpan(0, _filled).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = bigger;
            }
        }

        public void Dispose()
        {
            if (_buffer.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = [];
            }
        }

        /// <summary>The length of the whole rows at the start of <paramref name="data"/>; whether the stream's trailer follows them.</summary>
        private static int WholeRows(ReadOnlySpan<byte> data, out bool trailer)
        {
            trailer = false;
            var at = 0;
            while (data.Length - at >= 2)
            {
                var fields = BinaryPrimitives.ReadInt16BigEndian(data[at..]);
                if (fields == -1)
                {
                    trailer = true;
                    return at;
                }

                var end = at + 2;
                for (var i = 0; i < fields; i++)
                {
                    if (data.Length - end < 4)
                    {
                        return at;
                    }

                    var length = BinaryPrimitives.ReadInt32BigEndian(data[end..]);
                    end += 4 + Math.Max(length, 0);
                    if (end > data.Length)
                    {
                        return at;
                    }
                }

                at = end;
            }

            return at;
        }

        private static ReadOnlySpan<byte> Field(ReadOnlySpan<byte> row, scoped ref int at, out bool isNull)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(row[at..]);
            at += 4;
            isNull = length < 0;
            if (isNull)
            {
                return default;
            }

            var value = row.Slice(at, length);
            at += length;
            return value;
        }

        private static Utf8Column Text(ReadOnlySpan<byte> row, scoped ref int at)
        {
            var value = Field(row, ref at, out var isNull);
            return new Utf8Column(value, isNull);
        }

        private static long Int64(ReadOnlySpan<byte> row, scoped ref int at) => BinaryPrimitives.ReadInt64BigEndian(Field(row, ref at, out _));

        private static DateTimeOffset Timestamp(ReadOnlySpan<byte> value)
        {
            var microseconds = BinaryPrimitives.ReadInt64BigEndian(value);
            if (microseconds is long.MaxValue or long.MinValue)
            {
                throw new InvalidCastException("An infinite timestamp cannot be exported.");
            }

            return new DateTimeOffset(PostgresEpochTicks + (microseconds * 10), TimeSpan.Zero);
        }

        /// <summary>
        /// A numeric's binary form as a decimal with the numeric's scale (so <c>0.0001500000</c> keeps its
        /// zeros, as Npgsql reads it).
        /// </summary>
        private static decimal Numeric(ReadOnlySpan<byte> value)
        {
            var digits = BinaryPrimitives.ReadInt16BigEndian(value);
            var weight = BinaryPrimitives.ReadInt16BigEndian(value[2..]);
            var sign = BinaryPrimitives.ReadUInt16BigEndian(value[4..]);
            var scale = BinaryPrimitives.ReadInt16BigEndian(value[6..]);
            if (sign is not (0x0000 or 0x4000))
            {
                throw new InvalidCastException("A NaN or infinite numeric does not fit in a System.Decimal.");
            }

            if (digits > 8 || scale is < 0 or > 28)
            {
                throw new OverflowException("Numeric value does not fit in a System.Decimal");
            }

            UInt128 mantissa = 0;
            for (var i = 0; i < digits; i++)
            {
                mantissa = (mantissa * 10_000) + (ushort)BinaryPrimitives.ReadInt16BigEndian(value[(8 + (2 * i))..]);
            }

            // The value is mantissa × 10^(4 × (weight + 1 − digits)); as a decimal of the numeric's scale,
            // its integer is that times 10^scale.
            var exponent = (4 * (weight + 1 - digits)) + scale;
            for (; exponent > 0; exponent--)
            {
                mantissa *= 10;
                if (mantissa >> 96 != 0)
                {
                    throw new OverflowException("Numeric value does not fit in a System.Decimal");
                }
            }

            for (; exponent < 0; exponent++)
            {
                mantissa /= 10;
            }

            if (mantissa >> 96 != 0)
            {
                throw new OverflowException("Numeric value does not fit in a System.Decimal");
            }

            return new decimal((int)(uint)mantissa, (int)(uint)(mantissa >> 32), (int)(uint)(mantissa >> 64), sign == 0x4000, (byte)scale);
        }

        private async Task EnsureAsync(NpgsqlRawCopyStream copy, int bytes, CancellationToken cancellationToken)
        {
            if (_buffer.Length < bytes)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(bytes);
                _buffer.AsSpan(0, _filled).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = bigger;
            }

            while (_filled < bytes)
            {
                var read = await copy.ReadAsync(_buffer.AsMemory(_filled), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new InvalidDataException("The export's COPY stream ended inside its header.");
                }

                _filled += read;
            }
        }
    }
}
