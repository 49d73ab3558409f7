using System.Text;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.AspNetCore.Export;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Querying;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>
/// The detailed CSV export, byte for byte: every column and value shape (nulls, negative and long
/// decimals, timestamps, escaped text, quoted cells, metadata JSON with characters the serializer
/// escapes) on each store. A faster writer or reader must produce exactly these bytes.
/// </summary>
public abstract class ExportBytesTestsBase : StoreTestBase
{
    internal static readonly UsageRecord[] Records =
    [
        new()
        {
            Id = Guid.Parse("0193a000-0000-7000-8000-000000000001"),
            CreatedAt = new DateTimeOffset(2026, 11, 20, 10, 15, 30, TimeSpan.Zero).AddTicks(1234560),
            UserId = "7",
            Endpoint = "/api/hint",
            Operation = UsageOperation.Chat,
            RequestModel = "gpt-4o-mini",
            Model = "gpt-4o-mini-2024-07-18",
            InputTokens = 120,
            CachedInputTokens = 20,
            OutputTokens = 40,
            TotalTokens = 160,
            CostUsd = 0.0000423m,
            DurationMs = 1234.56789,
            Status = UsageStatus.Ok,
            HttpStatus = 200,
            SessionId = "s-1",
            ProblemId = "p-1",
            Tags = new Dictionary<string, string> { ["k"] = "v", ["subject"] = "math" },
        },
        new()
        {
            Id = Guid.Parse("0193a000-0000-7000-8000-000000000002"),
            CreatedAt = new DateTimeOffset(2026, 11, 21, 0, 0, 0, TimeSpan.Zero),
            Operation = UsageOperation.Responses,
            RequestModel = "gpt-4o",
            Status = UsageStatus.HttpError,
            HttpStatus = 500,
            Streaming = true,
        },
        new()
        {
            Id = Guid.Parse("0193a000-0000-7000-8000-000000000003"),
            CreatedAt = new DateTimeOffset(2026, 11, 22, 23, 59, 59, TimeSpan.Zero).AddTicks(9999990),
            UserId = "8",
            Endpoint = "/api/chat, \"quoted\"",
            Operation = UsageOperation.Chat,
            RequestModel = "-gpt",
            Model = "=gpt",
            InputTokens = 1_000_000_000_000,
            CachedInputTokens = 0,
            OutputTokens = 7,
            ReasoningTokens = 7,
            TotalTokens = 1_000_000_000_007,
            CostUsd = -0.5m,
            DurationMs = 0.0005,
            Status = UsageStatus.Estimated,
            SessionId = "@session",
            ProblemId = "\tproblem\r\nline",
            Tags = new Dictionary<string, string> { ["a"] = "ü<b>&'\"", ["note"] = "line1\nline2 =x" },
        },
        new()
        {
            Id = Guid.Parse("0193a000-0000-7000-8000-000000000004"),
            CreatedAt = new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero),
            UserId = "9",
            Endpoint = "+cmd",
            Operation = UsageOperation.Embeddings,
            Model = "text-embedding-3-small",
            InputTokens = 5,
            TotalTokens = 5,
            CostUsd = 123.4567890123m,
            DurationMs = 12.5,
            Status = UsageStatus.UsageMissing,
        },
    ];

    internal const string Expected =
        "id,createdAt,userId,username,email,endpoint,model,inputTokens,cachedInputTokens,cacheWriteTokens,outputTokens,reasoningTokens,totalTokens,costUsd,status,sessionId,problemId,metadata,operation,requestModel,durationMs,httpStatus,streaming,costSource,priceId\r\n"
        + "0193a000-0000-7000-8000-000000000001,2026-11-20T10:15:30.1234560+00:00,7,ann,ann@example.com,/api/hint,gpt-4o-mini-2024-07-18,120,20,0,40,0,160,0.0000423,ok,s-1,p-1,\"{\"\"k\"\":\"\"v\"\",\"\"subject\"\":\"\"math\"\"}\",chat,gpt-4o-mini,1234.568,200,False,reported,\r\n"
        + "0193a000-0000-7000-8000-000000000002,2026-11-21T00:00:00.0000000+00:00,,,,,gpt-4o,0,0,0,0,0,0,,http_error,,,,responses,gpt-4o,0,500,True,unpriced,\r\n"
        + "0193a000-0000-7000-8000-000000000003,2026-11-22T23:59:59.9999990+00:00,8,\"O'Brien, \"\"Bo\"\"\",\"'=bo@example.com\",\"/api/chat, \"\"quoted\"\"\",\"'=gpt\",1000000000000,0,0,7,7,1000000000007,-0.5,estimated,\"'@session\",\"'\tproblem\r\n"
        + "line\",\"{\"\"a\"\":\"\"\\u00FC\\u003Cb\\u003E\\u0026\\u0027\\u0022\"\",\"\"note\"\":\"\"line1\\nline2 =x\"\"}\",chat,\"'-gpt\",0,,False,reported,\r\n"
        + "0193a000-0000-7000-8000-000000000004,2026-11-23T12:00:00.0000000+00:00,9,,,\"'+cmd\",text-embedding-3-small,5,0,0,0,0,5,123.4567890123,usage_missing,,,,embeddings,,12.5,,False,reported,\r\n";

    [Fact]
    public async Task Detailed_IsByteForByteTheContractFormat()
    {
        await using var app = await StartAsync(configure: b => b.Services.AddSingleton<IUserDirectory>(new FixedDirectory()));
        await app.SeedAsync(Records);

        using var response = await app.Admin().GetAsync("/api/usage/export?from=2026-11-20&to=2026-11-23");
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(Expected, Encoding.UTF8.GetString(bytes));
        Assert.Equal(Encoding.UTF8.GetBytes(Expected), bytes);
    }

    [Fact]
    public async Task Detailed_AStoreFailureMidwayFailsTheResponse_NotATruncatedFile()
    {
        // Two chunks of rows are written and flushed, then the store fails in the third.
        await using var app = await StartAsync(configure: b => b.Services.AddSingleton<IUsageQueries>(new FailingExport((2 * UsageCsv.DetailedChunkSize) + 234)));

        // The headers are sent before the failure; the body must then break, not end as if complete.
        using var response = await app.Admin().GetAsync("/api/usage/export", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsStringAsync());
    }

    /// <summary>Exports <c>rows</c> records, then throws as a store losing its connection would.</summary>
    private sealed class FailingExport(int rows) : IUsageQueries
    {
        public async IAsyncEnumerable<UsageRecord> ExportAsync(UsageExportQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            for (var i = 0; i < rows; i++)
            {
                yield return Records[i % Records.Length] with { Id = Guid.CreateVersion7() };
            }

            await Task.Yield();
            throw new InvalidOperationException("connection lost");
        }

        public ValueTask<UsageStats> GetStatsAsync(DateOnly today, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<UserSummaryPage> GetUserSummariesAsync(UserSummaryQuery query, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<UserUsageDetail?> GetUserUsageAsync(string userId, DateOnly today, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<UsageFigures> GetUserTotalsAsync(string userId, DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<EndpointUsage>> GetEndpointUsageAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<UserEndpointUsage>> GetUserEndpointUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<PeriodUsage>> GetDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<PeriodUsage>> GetMonthlyUsageAsync(DateOnly fromMonth, DateOnly toMonth, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<UserDailyUsage>> GetUserDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }

    private sealed class FixedDirectory : IUserDirectory
    {
        private static readonly Dictionary<string, UserDirectoryEntry> Users = new(StringComparer.Ordinal)
        {
            ["7"] = new UserDirectoryEntry("7", "ann", "ann@example.com"),
            ["8"] = new UserDirectoryEntry("8", "O'Brien, \"Bo\"", "=bo@example.com"),
        };

        public ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default)
            => ValueTask.FromResult<IReadOnlyDictionary<string, UserDirectoryEntry>>(userIds.Where(Users.ContainsKey).ToDictionary(id => id, id => Users[id], StringComparer.Ordinal));

        public ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default) => ValueTask.FromResult(Users.ContainsKey(userId));
    }
}

public sealed class ExportBytesTests : ExportBytesTestsBase;

public sealed class PostgresExportBytesTests(PostgresDatabaseFixture database) : ExportBytesTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}
