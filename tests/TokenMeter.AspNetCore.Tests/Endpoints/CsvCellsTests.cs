using System.Globalization;
using System.Text;
using TokenMeter.AspNetCore.Export;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>The hand-written export cells produce exactly what the general formatting does.</summary>
public sealed class CsvCellsTests
{
    [Fact]
    public void TryFormatUtcTimestamp_MatchesRoundTripFormat_ForManyInstants()
    {
        var random = new Random(20261202);
        var cell = new byte[CsvCells.MaxLength];
        DateTimeOffset[] edges = [DateTimeOffset.UnixEpoch, new(2026, 12, 31, 23, 59, 59, TimeSpan.Zero), new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(1), new DateTimeOffset(9999, 12, 31, 23, 59, 59, TimeSpan.Zero).AddTicks(9_999_999), new DateTimeOffset(1, 1, 1, 0, 0, 0, TimeSpan.Zero)];
        foreach (var value in edges.Concat(Enumerable.Range(0, 20_000).Select(_ => new DateTimeOffset(random.NextInt64(DateTimeOffset.MinValue.Ticks, DateTimeOffset.MaxValue.Ticks), TimeSpan.Zero))))
        {
            Assert.True(CsvCells.TryFormatUtcTimestamp(value, cell, out var written));
            Assert.Equal(value.ToString("O", CultureInfo.InvariantCulture), Encoding.UTF8.GetString(cell, 0, written));
        }
    }

    [Fact]
    public void TryFormatUtcTimestamp_OtherOffset_LeftToTheGeneralFormat()
    {
        Assert.False(CsvCells.TryFormatUtcTimestamp(new DateTimeOffset(2026, 12, 2, 1, 0, 0, TimeSpan.FromHours(2)), new byte[CsvCells.MaxLength], out _));
    }

    [Fact]
    public void TryFormatThousandths_MatchesRoundedDoubleToString_ForManyDurations()
    {
        var random = new Random(20261202);
        var cell = new byte[CsvCells.MaxLength];
        double[] edges = [0, 0.0005, 0.0004999, 0.0015, 1, 12.5, 1234.56789, 999.9995, 0.001, 0.01, 0.1, 100, 1e9, 4.5e12, 123456789.0005, double.Epsilon];
        var values = edges
            .Concat(Enumerable.Range(0, 20_000).Select(_ => random.NextDouble() * 10_000))
            .Concat(Enumerable.Range(0, 20_000).Select(_ => Math.Round(random.NextDouble() * 100_000, random.Next(0, 5))))
            .Concat(Enumerable.Range(0, 5_000).Select(_ => random.NextDouble() * 1e12));
        foreach (var value in values)
        {
            var expected = Math.Round(value, 3).ToString(CultureInfo.InvariantCulture);
            Assert.True(CsvCells.TryFormatThousandths(value, cell, out var written), value.ToString("R", CultureInfo.InvariantCulture));
            Assert.Equal(expected, Encoding.UTF8.GetString(cell, 0, written));
        }
    }

    [Theory]
    [InlineData(-1.5)]
    [InlineData(-0.0001)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e16)]
    public void TryFormatThousandths_NegativeHugeOrNotFinite_LeftToTheGeneralFormat(double value)
    {
        Assert.False(CsvCells.TryFormatThousandths(value, new byte[CsvCells.MaxLength], out _));
    }
}
