using System.Globalization;

namespace TokenMeter.AspNetCore.Export;

/// <summary>
/// UTF-8 text of the two export cells that cost the most to format the general way, written by
/// hand: a UTC timestamp in the round-trip ("O") format and a duration rounded to milliseconds'
/// thousandths. Each produces exactly the text the general formatting does (the byte-for-byte
/// export test pins it); values outside the common shape return false and take the general path.
/// </summary>
internal static class CsvCells
{
    /// <summary>Room for either cell.</summary>
    public const int MaxLength = 40;

    private const long MaxExactThousandths = 1L << 52;

    /// <summary><c>yyyy-MM-ddTHH:mm:ss.fffffff+00:00</c>, as <c>value.ToString("O")</c> writes a zero offset.</summary>
    /// <param name="value">The timestamp.</param>
    /// <param name="destination">At least <see cref="MaxLength"/> bytes.</param>
    /// <param name="written">Bytes written.</param>
    /// <returns>False when the offset is not zero (the caller formats it the general way).</returns>
    public static bool TryFormatUtcTimestamp(DateTimeOffset value, Span<byte> destination, out int written)
    {
        written = 0;
        if (value.Offset != TimeSpan.Zero || destination.Length < 33)
        {
            return false;
        }

        var utc = value.UtcDateTime;
        Digits(destination[..4], utc.Year);
        destination[4] = (byte)'-';
        Digits(destination.Slice(5, 2), utc.Month);
        destination[7] = (byte)'-';
        Digits(destination.Slice(8, 2), utc.Day);
        destination[10] = (byte)'T';
        Digits(destination.Slice(11, 2), utc.Hour);
        destination[13] = (byte)':';
        Digits(destination.Slice(14, 2), utc.Minute);
        destination[16] = (byte)':';
        Digits(destination.Slice(17, 2), utc.Second);
        destination[19] = (byte)'.';
        Digits(destination.Slice(20, 7), (int)(utc.Ticks % TimeSpan.TicksPerSecond));
        "+00:00"u8.CopyTo(destination[27..]);
        written = 33;
        return true;
    }

    /// <summary>
    /// <c>Math.Round(value, 3)</c> as <c>double.ToString(CultureInfo.InvariantCulture)</c> writes it
    /// (shortest round-trip text: no trailing zeros, no decimal point for whole numbers).
    /// </summary>
    /// <param name="value">The duration in milliseconds.</param>
    /// <param name="destination">At least <see cref="MaxLength"/> bytes.</param>
    /// <param name="written">Bytes written.</param>
    /// <returns>False for negative, huge or non-finite values (the caller formats them the general way).</returns>
    public static bool TryFormatThousandths(double value, Span<byte> destination, out int written)
    {
        written = 0;
        var rounded = Math.Round(value, 3);

        // Below 2^52 thousandths the double nearest to k/1000 prints as k/1000 exactly.
        if (!double.IsFinite(rounded) || double.IsNegative(rounded) || rounded * 1000 >= MaxExactThousandths || destination.Length < 24)
        {
            return false;
        }

        var thousandths = (long)Math.Round(rounded * 1000);
        var whole = thousandths / 1000;
        var fraction = (int)(thousandths % 1000);
        if (!whole.TryFormat(destination, out written, default, CultureInfo.InvariantCulture))
        {
            return false;
        }

        if (fraction == 0)
        {
            return true;
        }

        destination[written++] = (byte)'.';
        var digits = 3;
        while (fraction % 10 == 0)
        {
            fraction /= 10;
            digits--;
        }

        Digits(destination.Slice(written, digits), fraction);
        written += digits;
        return true;
    }

    private static void Digits(Span<byte> destination, int value)
    {
        for (var i = destination.Length - 1; i >= 0; i--)
        {
            destination[i] = (byte)('0' + (value % 10));
            value /= 10;
        }
    }
}
