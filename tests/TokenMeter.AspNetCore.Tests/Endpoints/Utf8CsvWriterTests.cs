using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using CsvHelper;
using TokenMeter.AspNetCore.Export;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>
/// The detailed export's writer against CsvHelper with the export's options: the same rows, byte for
/// byte, for text of every shape (formula-looking, quoted, multi-line, blank-edged, non-ASCII, lone
/// surrogates, empty) and numbers, timestamps and durations at their edges.
/// </summary>
public sealed class Utf8CsvWriterTests
{
    private static readonly string[] Texts =
    [
        "plain", "/api/hint", "gpt-4o-mini", "a b", " lead", "trail ", " ", "", "=1+1", "@sum", "+cmd", "-gpt", "\tx", "\rx", "x\r", "x\ny",
        "a,b", "say \"hi\"", "\"", ",", "'quoted'", "ü", "日本", "\ud800", "x\udc00y", "{\"k\":\"v\"}", "~!#$%&*()[]{}|\\;:<>?/", "0123", "x=1", "a\u0000b", "\u007f",
    ];

    [Fact]
    public async Task Rows_AreByteForByteWhatCsvHelperWrites()
    {
        var random = new Random(20261202);
        var rows = new List<object?[]>();
        foreach (var text in Texts)
        {
            rows.Add([text, null, 0L, 0m, true, DateTimeOffset.UnixEpoch, 0.0, (int?)null]);
        }

        for (var i = 0; i < 3_000; i++)
        {
            rows.Add(
            [
                RandomText(random),
                random.Next(4) == 0 ? null : RandomText(random),
                random.NextInt64(long.MinValue, long.MaxValue) >> random.Next(64),
                random.Next(5) == 0 ? null : (decimal)Math.Round((random.NextDouble() - 0.3) * Math.Pow(10, random.Next(-8, 12)), random.Next(0, 12)),
                random.Next(2) == 0,
                new DateTimeOffset(random.NextInt64(DateTimeOffset.MinValue.Ticks + TimeSpan.TicksPerDay, DateTimeOffset.MaxValue.Ticks - TimeSpan.TicksPerDay), TimeSpan.FromMinutes(random.Next(3) == 0 ? random.Next(-600, 600) : 0)),
                random.Next(10) switch { 0 => -random.NextDouble() * 100, 1 => random.NextDouble() * 1e17, 2 => double.NaN, _ => random.NextDouble() * 10_000 },
                random.Next(3) == 0 ? null : random.Next(100, 600),
            ]);
        }

        Assert.Equal(Encoding.UTF8.GetString(WithCsvHelper(rows)), Encoding.UTF8.GetString(await WithUtf8WriterAsync(rows)));
    }

    private static string RandomText(Random random)
    {
        if (random.Next(3) == 0)
        {
            return Texts[random.Next(Texts.Length)];
        }

        const string Alphabet = "abcXYZ019 -_=+@\t\r\n,\"'./ü€\ud83d\ude00";
        var chars = new char[random.Next(0, 12)];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = Alphabet[random.Next(Alphabet.Length)];
        }

        return new string(chars);
    }

    private static byte[] WithCsvHelper(List<object?[]> rows)
    {
        using var stream = new MemoryStream();
        using (var csv = CsvWriter.Create(stream, CsvExportResult.Options, leaveOpen: true))
        {
            foreach (var row in rows)
            {
                csv.WriteField((string?)row[0]);
                csv.WriteField((string?)row[1]);
                csv.WriteField((long)row[2]!, default);
                csv.WriteField((decimal?)row[3], default);
                csv.WriteField((bool)row[4]!);
                csv.WriteField((DateTimeOffset)row[5]!, default);
                csv.WriteField(Math.Round((double)row[6]!, 3), default);
                csv.WriteField((int?)row[7], default);
                csv.EndRecord();
            }

            csv.Flush();
        }

        return stream.ToArray();
    }

    private static async Task<byte[]> WithUtf8WriterAsync(List<object?[]> rows)
    {
        using var stream = new MemoryStream();
        var pipe = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
        using (var csv = new Utf8CsvWriter(pipe))
        {
            var n = 0;
            foreach (var row in rows)
            {
                // Text both as it comes and encoded once, as the export writes repeated cells.
                csv.WriteText((string?)row[0]);
                csv.WriteEncoded(csv.Encode((string?)row[1]));
                csv.WriteInt64((long)row[2]!);
                csv.WriteDecimal((decimal?)row[3]);
                csv.WriteBoolean((bool)row[4]!);
                csv.WriteTimestamp((DateTimeOffset)row[5]!);
                csv.WriteThousandths((double)row[6]!);
                csv.WriteInt32((int?)row[7]);
                csv.EndRow();
                if (++n % 100 == 0)
                {
                    await csv.FlushAsync(CancellationToken.None);
                }
            }

            await csv.FlushAsync(CancellationToken.None);
        }

        await pipe.CompleteAsync();
        return stream.ToArray();
    }
}
