using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using TokenMeter.Metering;

namespace TokenMeter.Tests.Metering;

/// <summary>
/// The stream wrapper keeps only raw bytes while the caller reads and finds the usage when the stream
/// ends: however the reads split the lines, and when a stream is longer than what it keeps.
/// </summary>
public sealed class MeteredStreamTests
{
    private const string Usage = """{"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage": {"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}""";

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(65536)]
    public async Task UsageIsFound_HoweverTheReadsSplitTheLines(int readSize)
    {
        var sse = Chunks(3) + "data: " + Usage + "\r\n\r\ndata: [DONE]\r\n\r\n";
        var record = await ReadAsync(sse, readSize, toTheEnd: true);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal((11L, 3L, 7L, 2L, 18L), (record.InputTokens, record.CachedInputTokens, record.OutputTokens, record.ReasoningTokens, record.TotalTokens));
        Assert.Equal("gpt-4o-2024-08-06", record.Model);
    }

    [Fact]
    public async Task LongerThanWhatIsKept_TheUsageAtTheEndIsStillRead()
    {
        var chunks = Chunks((MeteredStream.MaxKeptBytes / 100) + 1000);
        Assert.True(chunks.Length > MeteredStream.MaxKeptBytes);
        var record = await ReadAsync(chunks + "data: " + Usage + "\n\ndata: [DONE]\n\n", 65536, toTheEnd: true);
        Assert.Equal(UsageStatus.Ok, record.Status);
        Assert.Equal((11L, 7L), (record.InputTokens, record.OutputTokens));
    }

    [Fact]
    public async Task LongerThanWhatIsKept_WithoutUsage_EstimatesFromTheLastPart()
    {
        var chunks = Chunks((MeteredStream.MaxKeptBytes / 100) + 1000);
        var record = await ReadAsync(chunks, 65536, toTheEnd: false);
        Assert.Equal(UsageStatus.Cancelled, record.Status);
        Assert.InRange(record.OutputTokens, 1, chunks.Length);
        Assert.Equal("output", record.Tags!["tokenmeter.estimated"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ReadsFinishingLater_NoObserver_BytesUnchanged_UsageRecorded_FailureRethrown(bool fail)
    {
        // Reads that do not complete at once (as over a network) are finished from a callback when the record is deferred.
        await using var h = await MeteringHarness.StartAsync(observe: false);
        var meter = h.Services.GetRequiredService<UsageMeter>();
        Assert.True(meter.CanDefer);
        var writer = h.Services.GetRequiredService<TokenMeter.Writing.UsageWriter>();
        await writer.StartAsync(default);
        var bytes = Encoding.UTF8.GetBytes(Chunks(5) + "data: " + Usage + "\n\ndata: [DONE]\n\n");
        var call = new MeteredCall(meter, NullLogger.Instance, UsageOperation.Chat, null, new RequestInfo { Model = "gpt-4o", Stream = true }, null) { Streaming = true };
        var received = new MemoryStream();
        await using (var stream = new MeteredStream(new LaterStream(bytes, failAfter: fail ? 3 : int.MaxValue), call, 200))
        {
            var buffer = new byte[100];
            var reading = async () =>
            {
                int read;
                while ((read = await stream.ReadAsync(buffer)) > 0)
                {
                    received.Write(buffer, 0, read);
                }
            };
            if (fail)
            {
                await Assert.ThrowsAsync<IOException>(reading);
            }
            else
            {
                await reading();
            }
        }

        await writer.StopAsync(default);
        var stored = new List<UsageRecord>();
        await foreach (var r in h.Services.GetRequiredService<TokenMeter.Querying.IUsageQueries>().ExportAsync(new TokenMeter.Querying.UsageExportQuery()))
        {
            stored.Add(r);
        }

        var record = Assert.Single(stored);
        if (fail)
        {
            Assert.Equal(300, received.Length);
            Assert.Equal(UsageStatus.TransportError, record.Status);
        }
        else
        {
            Assert.Equal(bytes, received.ToArray());
            Assert.Equal((UsageStatus.Ok, 11L, 7L), (record.Status, record.InputTokens, record.OutputTokens));
        }
    }

    private static string Chunks(int count)
    {
        var text = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            text.Append("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word ")
                .Append(i % 100).Append("\"}}],\"usage\":null}\r\n\r\n");
        }

        return text.ToString();
    }

    /// <summary>Reads <paramref name="sse"/> through a metered stream in reads of <paramref name="readSize"/> bytes; disposes it early unless <paramref name="toTheEnd"/>.</summary>
    private static async Task<UsageRecord> ReadAsync(string sse, int readSize, bool toTheEnd)
    {
        await using var h = await MeteringHarness.StartAsync();
        var call = new MeteredCall(h.Services.GetRequiredService<UsageMeter>(), NullLogger.Instance, UsageOperation.Chat, null, new RequestInfo { Model = "gpt-4o", Stream = true }, null)
        {
            Streaming = true,
        };
        var bytes = Encoding.UTF8.GetBytes(sse);
        await using (var stream = new MeteredStream(new MemoryStream(bytes), call, 200))
        {
            var buffer = new byte[readSize];
            long total = 0;
            int read;
            while ((toTheEnd || total < bytes.Length) && (read = await stream.ReadAsync(buffer)) > 0)
            {
                total += read;
            }

            Assert.Equal(bytes.Length, total);
        }

        return Assert.Single(h.Observer.Records);
    }

    /// <summary>A stream whose every read completes later (after a yield), and that fails after some reads.</summary>
    private sealed class LaterStream(byte[] bytes, int failAfter) : Stream
    {
        private int _position;
        private int _reads;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            if (++_reads > failAfter)
            {
                throw new IOException("connection reset");
            }

            var n = Math.Min(buffer.Length, bytes.Length - _position);
            bytes.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
    }
}
