using System.IO.Pipelines;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using TokenMeter.AspNetCore.Export;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Querying;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>
/// PostgreSQL's raw export rows (binary COPY parsed in place, <see cref="IUsageExportRowSource"/>) give
/// the detailed CSV byte for byte what the same store's records give: over rows of every awkward shape
/// (non-ASCII and formula-looking text, quotes, empty strings, nulls, numerics of every scale, unknown
/// and legacy status and cost-source values, rows larger than a block), with and without a user
/// directory and with each filter.
/// </summary>
public sealed class ExportRowsTests(PostgresDatabaseFixture database) : StoreTestBase, IClassFixture<PostgresDatabaseFixture>
{
    private static readonly DateTimeOffset Start = new(2026, 10, 30, 22, 0, 0, TimeSpan.Zero);

    private static readonly string?[] Texts =
    [
        null, "", " ", "plain", "with space", " lead", "trail ", "=1+1", "+cmd", "-minus", "@at", "\tTab", "\rCR", "comma,here", "quote\"here",
        "line\nbreak", "naïve", "日本語", "emoji 😀", "'apostrophe", "semi;colon", "back\\slash", "x",
    ];

    private static readonly decimal?[] Costs =
    [
        null, 0m, 0.0000000000m, 0.0000423m, 0.00015000m, -0.5m, 1m, 1.10m, 123.4567890123m, 12345678901234.5678m,
        -98765432.123456789012345678m, 0.0000000000000000000000000001m, 10000m, 10000.0000m, 99999999.99999999m,
    ];

    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);

    [Fact]
    public async Task RawRows_AreByteForByteTheRecords_ForEveryShapeAndFilter()
    {
        await using var app = await StartAsync();
        var records = Records(3_000);
        await app.Store.AppendAsync(records);
        await LegacyValuesAsync();

        var queries = app.Queries;
        var rows = Assert.IsAssignableFrom<IUsageExportRowSource>(queries);
        var directory = new Directory(records);
        var queriesToCheck = new[]
        {
            new UsageExportQuery(),
            new UsageExportQuery(new DateOnly(2026, 10, 31), new DateOnly(2026, 11, 1)),
            new UsageExportQuery(null, new DateOnly(2026, 10, 31)),
            new UsageExportQuery(new DateOnly(2026, 11, 2)),
            new UsageExportQuery(UserId: "naïve"),
            new UsageExportQuery(new DateOnly(2026, 10, 31), new DateOnly(2026, 11, 3), "=1+1"),
            new UsageExportQuery(UserId: "nobody"),
        };

        foreach (var query in queriesToCheck)
        {
            foreach (var users in new IUserDirectory?[] { directory, null })
            {
                var expected = await CsvAsync(csv => UsageCsv.WriteDetailedRecordsAsync(csv, queries, users, query, CancellationToken.None));
                var actual = await CsvAsync(csv => UsageCsv.WriteDetailedRowsAsync(csv, rows, users, query, CancellationToken.None));
                Assert.True(expected.Length > 300 || query.UserId == "nobody", "the header and at least one row");
                Assert.Equal(System.Text.Encoding.UTF8.GetString(expected), System.Text.Encoding.UTF8.GetString(actual));
                Assert.Equal(expected, actual);
            }
        }

        // The HTTP route takes the raw rows on PostgreSQL: its file is the records' file.
        using var response = await app.Admin().GetAsync("/api/usage/export");
        var routeBytes = await response.Content.ReadAsByteArrayAsync();
        var recordBytes = await CsvAsync(csv => UsageCsv.WriteDetailedRecordsAsync(csv, queries, null, new UsageExportQuery(), CancellationToken.None));
        Assert.Equal(recordBytes, routeBytes);
    }

    [Fact]
    public async Task AbandonedExport_StopsTheCopy_AndTheStoreKeepsWorking()
    {
        await using var app = await StartAsync();
        await app.Store.AppendAsync(Records(6_000));
        var rows = Assert.IsAssignableFrom<IUsageExportRowSource>(app.Queries);

        // Read one block of many, then leave: the COPY is cancelled rather than read to its end.
        for (var i = 0; i < 3; i++)
        {
            await foreach (var block in rows.ExportBlocksAsync(new UsageExportQuery()))
            {
                var position = 0;
                Assert.True(block.TryRead(ref position, out _));
                break;
            }
        }

        var count = 0;
        await foreach (var block in rows.ExportBlocksAsync(new UsageExportQuery()))
        {
            var position = 0;
            while (block.TryRead(ref position, out _))
            {
                count++;
            }
        }

        Assert.Equal(6_000, count);
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var rowCount = new NpgsqlCommand("SELECT count(*) FROM user_api_usage", connection);
        Assert.Equal(6_000L, await rowCount.ExecuteScalarAsync());
    }

    /// <summary>The records: every text, cost and status shape, some rows far larger than a block.</summary>
    private static UsageRecord[] Records(int count)
    {
        var random = new Random(17);
        var records = new UsageRecord[count];
        for (var i = 0; i < count; i++)
        {
            string? Text() => Texts[random.Next(Texts.Length)];
            var tags = i % 500 == 250 ? new Dictionary<string, string> { ["big"] = new string('z', 700_000) } : random.Next(6) switch
            {
                0 => null,
                1 => new Dictionary<string, string>(),
                2 => new Dictionary<string, string> { ["gradeLevel"] = (6 + (i % 7)).ToString(System.Globalization.CultureInfo.InvariantCulture), ["subject"] = "math" },
                3 => new Dictionary<string, string> { ["a"] = "ü<b>&'\"", ["note"] = "line1\nline2 =x" },
                4 => new Dictionary<string, string> { [Pricing.BillingTags.Estimated] = "output" },
                _ => new Dictionary<string, string> { ["short"] = "zzzzzzzzzz" },
            };
            records[i] = new UsageRecord
            {
                Id = Guid.CreateVersion7(),
                CreatedAt = Start.AddSeconds(i * 97).AddTicks(random.Next(10_000_000) / 10 * 10),
                UserId = Text(),
                Endpoint = Text(),
                Operation = Texts[3 + random.Next(Texts.Length - 3)]!,
                RequestModel = Text(),
                Model = random.Next(3) == 0 ? null : Text(),
                InputTokens = random.NextInt64(0, 1L << 40),
                CachedInputTokens = random.Next(1000),
                CacheWriteTokens = random.Next(100),
                OutputTokens = random.Next(5000),
                ReasoningTokens = random.Next(50),
                TotalTokens = random.NextInt64(0, 1L << 44),
                CostUsd = Costs[random.Next(Costs.Length)],
                PriceId = Text(),
                DurationMs = random.Next(4) switch { 0 => 0, 1 => random.NextDouble() * 10_000, 2 => random.Next(100_000) / 8.0, _ => 1e300 },
                Status = (UsageStatus)random.Next(7),
                HttpStatus = random.Next(3) == 0 ? null : 200 + random.Next(400),
                Streaming = random.Next(2) == 0,
                SessionId = Text(),
                ProblemId = Text(),
                Tags = tags,
                CostSource = (CostSource)random.Next(3),
            };
        }

        return records;
    }

    /// <summary>Values only older versions (or newer ones) store: no cost source, an unknown cost source, a numbered status.</summary>
    private async Task LegacyValuesAsync()
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            """
            UPDATE user_api_usage SET cost_source = NULL WHERE input_tokens % 7 = 0;
            UPDATE user_api_usage SET cost_source = 'future' WHERE input_tokens % 7 = 1;
            UPDATE user_api_usage SET status = '42' WHERE input_tokens % 11 = 0;
            """,
            connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<byte[]> CsvAsync(Func<Utf8CsvWriter, Task> write)
    {
        using var stream = new MemoryStream();
        var pipe = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
        using (var csv = new Utf8CsvWriter(pipe))
        {
            await write(csv);
            await csv.FlushAsync(CancellationToken.None);
        }

        await pipe.CompleteAsync();
        return stream.ToArray();
    }

    /// <summary>Names and emails for most users, some awkward, some missing.</summary>
    private sealed class Directory(IEnumerable<UsageRecord> records) : IUserDirectory
    {
        private readonly Dictionary<string, UserDirectoryEntry> _users = records
            .Select(r => r.UserId).OfType<string>().Distinct(StringComparer.Ordinal).Where(id => id != "x")
            .ToDictionary(id => id, id => new UserDirectoryEntry(id, "name of " + id, id.Length % 2 == 0 ? null : "=" + id + "@example.com"), StringComparer.Ordinal);

        public ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default)
            => ValueTask.FromResult<IReadOnlyDictionary<string, UserDirectoryEntry>>(userIds.Where(_users.ContainsKey).ToDictionary(id => id, id => _users[id], StringComparer.Ordinal));

        public ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default) => ValueTask.FromResult(_users.ContainsKey(userId));
    }
}
