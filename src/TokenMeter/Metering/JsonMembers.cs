using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Text;
using System.Text.Json;

namespace TokenMeter.Metering;

/// <summary>
/// Walks the members of one JSON object without tokenising the values it is not asked about:
/// a nested object or array is stepped over block by block, vector compares finding its brackets and quotes.
/// Metering reads a few top-level fields of request and reply bodies (<c>model</c>, <c>usage</c>,
/// ...) and skips the rest (messages, choices, embeddings), so this is several times cheaper than
/// <see cref="Utf8JsonReader"/> on the same bytes. It trusts the structure rather than validating
/// every token: on anything it does not understand it sets <see cref="Failed"/>, and callers then
/// fall back to <see cref="Utf8JsonReader"/>.
/// </summary>
internal ref struct JsonMembers
{
    private static readonly SearchValues<byte> StringEnd = SearchValues.Create("\"\\"u8);
    private static readonly SearchValues<byte> ScalarEnd = SearchValues.Create(",}] \t\r\n"u8);

    private ReadOnlySpan<byte> _rest;
    private bool _first;

    private JsonMembers(ReadOnlySpan<byte> rest, bool failed)
    {
        _rest = rest;
        _first = true;
        Failed = failed;
    }

    /// <summary>The current member's name, as written (escapes not decoded).</summary>
    public ReadOnlySpan<byte> Name { get; private set; }

    /// <summary>The current member's value: its raw JSON text.</summary>
    public ReadOnlySpan<byte> Value { get; private set; }

    /// <summary>True when the text was not an object this walker understood.</summary>
    public bool Failed { get; private set; }

    /// <summary>Starts walking the object that <paramref name="json"/> holds (surrounding whitespace allowed).</summary>
    public static JsonMembers Of(ReadOnlySpan<byte> json)
    {
        json = json.Trim(" \t\r\n"u8);
        return json.Length >= 2 && json[0] == (byte)'{' && json[^1] == (byte)'}'
            ? new JsonMembers(json[1..^1], failed: false)
            : new JsonMembers(default, failed: true);
    }

    /// <summary>Moves to the next member; false at the end of the object or on failure.</summary>
    public bool MoveNext()
    {
        if (Failed)
        {
            return false;
        }

        var rest = _rest.TrimStart(" \t\r\n"u8);
        if (!_first)
        {
            if (rest.IsEmpty)
            {
                return false;
            }

            if (rest[0] != (byte)',')
            {
                return Fail();
            }

            rest = rest[1..].TrimStart(" \t\r\n"u8);
        }
        else if (rest.IsEmpty)
        {
            return false;
        }

        _first = false;
        if (rest.IsEmpty || rest[0] != (byte)'"')
        {
            return Fail();
        }

        var nameLength = StringLength(rest);
        if (nameLength < 0)
        {
            return Fail();
        }

        Name = rest[1..(nameLength - 1)];
        rest = rest[nameLength..].TrimStart(" \t\r\n"u8);
        if (rest.IsEmpty || rest[0] != (byte)':')
        {
            return Fail();
        }

        rest = rest[1..].TrimStart(" \t\r\n"u8);
        if (rest.IsEmpty)
        {
            return Fail();
        }

        var valueLength = rest[0] switch
        {
            (byte)'"' => StringLength(rest),
            (byte)'{' or (byte)'[' => NestedLength(rest),
            _ => ScalarLength(rest),
        };
        if (valueLength <= 0)
        {
            return Fail();
        }

        Value = rest[..valueLength];
        _rest = rest[valueLength..];
        return true;
    }

    /// <summary>The current value as a string when it is a JSON string; null for anything else.</summary>
    public readonly string? ValueAsString()
    {
        var value = Value;
        if (value.Length < 2 || value[0] != (byte)'"')
        {
            return null;
        }

        var raw = value[1..^1];
        if (raw.IndexOf((byte)'\\') < 0)
        {
            return Encoding.UTF8.GetString(raw);
        }

        var reader = new Utf8JsonReader(value);
        reader.Read();
        return reader.GetString();
    }

    private bool Fail()
    {
        Failed = true;
        return false;
    }

    // Length of the string token that starts at text[0] (a quote), quotes included; -1 if unterminated.
    private static int StringLength(ReadOnlySpan<byte> text)
    {
        var at = 1;
        while (true)
        {
            var next = text[at..].IndexOfAny(StringEnd);
            if (next < 0)
            {
                return -1;
            }

            at += next;
            if (text[at] == (byte)'"')
            {
                return at + 1;
            }

            // A backslash escapes the byte after it.
            at += 2;
            if (at >= text.Length)
            {
                return -1;
            }
        }
    }

    // Length of the object or array that starts at text[0]; -1 if it never closes. A block of bytes
    // at a time: one vector compare per kind finds its quotes, backslashes and brackets, and only
    // those are looked at (bodies are dense with them, so a search call per one cost more than this).
    private static int NestedLength(ReadOnlySpan<byte> text)
    {
        var nesting = default(Nesting);
        var at = 0;
        int length;
        var width = Vector256.IsHardwareAccelerated ? Vector256<byte>.Count : Vector128.IsHardwareAccelerated ? Vector128<byte>.Count : 0;
        for (; width > 0 && at + width <= text.Length; at += width)
        {
            var marks = width == Vector256<byte>.Count ? Marks(Vector256.Create(text.Slice(at, width))) : Marks(Vector128.Create(text.Slice(at, width)));
            if ((length = nesting.Take(text, at, marks, width)) != 0)
            {
                return length;
            }
        }

        // The rest (or all of it without vectors): every byte is a candidate.
        for (; at < text.Length; at += 64)
        {
            var count = Math.Min(64, text.Length - at);
            if ((length = nesting.Take(text, at, count == 64 ? ulong.MaxValue : (1UL << count) - 1, count)) != 0)
            {
                return length;
            }
        }

        return -1;
    }

    // Bit i set where byte i of the block is a quote, a backslash or a bracket ('{' and '[' differ
    // only in bit 0x20, as do '}' and ']').
    private static ulong Marks(Vector256<byte> block) => Vector256.ExtractMostSignificantBits(
        Vector256.Equals(block, Vector256.Create((byte)'"')) | Vector256.Equals(block, Vector256.Create((byte)'\\'))
        | Vector256.Equals(block | Vector256.Create((byte)0x20), Vector256.Create((byte)'{')) | Vector256.Equals(block | Vector256.Create((byte)0x20), Vector256.Create((byte)'}')));

    private static ulong Marks(Vector128<byte> block) => Vector128.ExtractMostSignificantBits(
        Vector128.Equals(block, Vector128.Create((byte)'"')) | Vector128.Equals(block, Vector128.Create((byte)'\\'))
        | Vector128.Equals(block | Vector128.Create((byte)0x20), Vector128.Create((byte)'{')) | Vector128.Equals(block | Vector128.Create((byte)0x20), Vector128.Create((byte)'}')));

    // The state of a walk over a nested value, carried from one block of bytes to the next.
    private struct Nesting
    {
        private int _depth;
        private bool _inString;

        // A backslash ended the last block: the first byte of this one is escaped.
        private bool _escaped;

        // Takes the candidate bytes of text[start..(start + width)] (bit i of marks = text[start + i]) in
        // order; returns the value's length once its outermost bracket closes, else 0.
        public int Take(ReadOnlySpan<byte> text, int start, ulong marks, int width)
        {
            if (_escaped)
            {
                marks &= ~1UL;
                _escaped = false;
            }

            while (marks != 0)
            {
                var i = BitOperations.TrailingZeroCount(marks);
                marks &= marks - 1;
                var b = text[start + i];
                if (_inString)
                {
                    if (b == (byte)'"')
                    {
                        _inString = false;
                    }
                    else if (b == (byte)'\\')
                    {
                        // The escaped byte is no quote or backslash of its own.
                        if (i + 1 < width)
                        {
                            marks &= ~(1UL << (i + 1));
                        }
                        else
                        {
                            _escaped = true;
                        }
                    }

                    continue;
                }

                switch (b)
                {
                    case (byte)'"':
                        _inString = true;
                        break;
                    case (byte)'{' or (byte)'[':
                        _depth++;
                        break;
                    case (byte)'}' or (byte)']':
                        if (--_depth == 0)
                        {
                            return start + i + 1;
                        }

                        break;
                }
            }

            return 0;
        }
    }

    private static int ScalarLength(ReadOnlySpan<byte> text)
    {
        var end = text.IndexOfAny(ScalarEnd);
        return end < 0 ? text.Length : end;
    }
}
