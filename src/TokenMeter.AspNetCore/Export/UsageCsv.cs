using System.Threading.Channels;
using CsvHelper;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Pricing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Export;

/// <summary>The two usage exports of the admin API: one row per call, and one row per user.</summary>
internal static class UsageCsv
{
    /// <summary>Rows read before each directory lookup and flush.</summary>
    internal const int ChunkSize = 500;

    /// <summary>Chunks the store's reader may run ahead of the writer (bounds the memory of an export).</summary>
    internal const int ReadAheadChunks = 4;

    private const int MaxCachedUsers = 10_000;

    private const int MaxCachedMetadata = 4_096;

    public static readonly string[] DetailedHeader =
    [
        "id", "createdAt", "userId", "username", "email", "endpoint", "model", "inputTokens", "cachedInputTokens", "cacheWriteTokens",
        "outputTokens", "reasoningTokens", "totalTokens", "costUsd", "status", "sessionId", "problemId", "metadata",
        "operation", "requestModel", "durationMs", "httpStatus", "streaming", "costSource", "priceId",
    ];

    public static readonly string[] SummaryHeader =
    [
        "userId", "username", "email", "totalCalls", "inputTokens", "outputTokens", "totalTokens", "totalCostUsd",
        "lastCallAt", "cachedInputTokens", "cacheWriteTokens", "reasoningTokens",
    ];

    public static async Task WriteDetailedAsync(CsvWriter csv, HttpContext context, UsageExportQuery query, CancellationToken cancellationToken)
    {
        var queries = context.RequestServices.GetRequiredService<IUsageQueries>();
        var directory = context.RequestServices.GetService<IUserDirectory>();
        var users = new Dictionary<string, UserDirectoryEntry?>(StringComparer.Ordinal);
        var metadata = new Dictionary<IReadOnlyDictionary<string, string>, string>(ReferenceEqualityComparer.Instance);
        csv.WriteHeader(DetailedHeader);

        // The store's reader runs on its own task, a few chunks ahead of the writer: reading rows and
        // writing CSV then use both cores instead of taking turns. The bounded channel keeps memory flat.
        var chunks = Channel.CreateBounded<List<UsageRecord>>(new BoundedChannelOptions(ReadAheadChunks) { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reader = Task.Run(() => ReadChunksAsync(queries, query, chunks.Writer, stop.Token), CancellationToken.None);
        try
        {
            await foreach (var chunk in chunks.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await WriteChunkAsync(csv, chunk, directory, users, metadata, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await reader.ConfigureAwait(false);
        }
    }

    private static async Task ReadChunksAsync(IUsageQueries queries, UsageExportQuery query, ChannelWriter<List<UsageRecord>> chunks, CancellationToken cancellationToken)
    {
        try
        {
            var chunk = new List<UsageRecord>(ChunkSize);
            await foreach (var record in queries.ExportAsync(query, cancellationToken).ConfigureAwait(false))
            {
                chunk.Add(record);
                if (chunk.Count == ChunkSize)
                {
                    await chunks.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
                    chunk = new List<UsageRecord>(ChunkSize);
                }
            }

            if (chunk.Count > 0)
            {
                await chunks.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
            }

            chunks.Complete();
        }
#pragma warning disable CA1031 // Handed to the writer's side, which rethrows it.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            chunks.Complete(ex);
        }
    }

    public static async Task WriteSummaryAsync(CsvWriter csv, HttpContext context, CancellationToken cancellationToken)
    {
        var queries = context.RequestServices.GetRequiredService<IUsageQueries>();
        var directory = context.RequestServices.GetService<IUserDirectory>();
        csv.WriteHeader(SummaryHeader);
        for (var offset = 0; ; offset += ChunkSize)
        {
            var page = await queries.GetUserSummariesAsync(
                new UserSummaryQuery(UserSummarySort.UserId, SortOrder.Ascending, ChunkSize, offset), cancellationToken).ConfigureAwait(false);
            IReadOnlyDictionary<string, UserDirectoryEntry> users = directory is null || page.Items.Count == 0
                ? new Dictionary<string, UserDirectoryEntry>()
                : await directory.GetUsersAsync(page.Items.Select(i => i.UserId).ToArray(), cancellationToken).ConfigureAwait(false);
            foreach (var s in page.Items)
            {
                users.TryGetValue(s.UserId, out var user);
                csv.WriteField(s.UserId);
                csv.WriteField(user?.Username);
                csv.WriteField(user?.Email);
                var f = s.Figures;
                csv.WriteField(f.Calls, default);
                csv.WriteField(f.InputTokens, default);
                csv.WriteField(f.OutputTokens, default);
                csv.WriteField(f.TotalTokens, default);
                csv.WriteField(f.CostUsd, default);
                WriteTimestamp(csv, s.LastCallAt);
                csv.WriteField(f.CachedInputTokens, default);
                csv.WriteField(f.CacheWriteTokens, default);
                csv.WriteField(f.ReasoningTokens, default);
                await csv.EndRecordAsync(cancellationToken).ConfigureAwait(false);
            }

            await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (page.Items.Count < ChunkSize)
            {
                return;
            }
        }
    }

    private static async Task WriteChunkAsync(
        CsvWriter csv,
        List<UsageRecord> chunk,
        IUserDirectory? directory,
        Dictionary<string, UserDirectoryEntry?> users,
        Dictionary<IReadOnlyDictionary<string, string>, string> metadata,
        CancellationToken cancellationToken)
    {
        if (chunk.Count == 0)
        {
            return;
        }

        if (directory is not null)
        {
            var missing = chunk.Where(r => r.UserId is not null && !users.ContainsKey(r.UserId)).Select(r => r.UserId!).Distinct(StringComparer.Ordinal).ToArray();
            if (missing.Length > 0)
            {
                if (users.Count + missing.Length > MaxCachedUsers)
                {
                    users.Clear();
                }

                var found = await directory.GetUsersAsync(missing, cancellationToken).ConfigureAwait(false);
                foreach (var id in missing)
                {
                    users[id] = found.TryGetValue(id, out var entry) ? entry : null;
                }
            }
        }

        var cell = new byte[CsvCells.MaxLength];
        foreach (var r in chunk)
        {
            UserDirectoryEntry? user = null;
            if (r.UserId is not null)
            {
                users.TryGetValue(r.UserId, out user);
            }

            csv.WriteField(r.Id, default);
            if (CsvCells.TryFormatUtcTimestamp(r.CreatedAt, cell, out var written))
            {
                csv.WriteField(cell.AsSpan(0, written));
            }
            else
            {
                csv.WriteField(r.CreatedAt, default);
            }

            csv.WriteField(r.UserId);
            csv.WriteField(user?.Username);
            csv.WriteField(user?.Email);
            csv.WriteField(r.Endpoint);
            csv.WriteField(r.Model ?? r.RequestModel);
            csv.WriteField(r.InputTokens, default);
            csv.WriteField(r.CachedInputTokens, default);
            csv.WriteField(r.CacheWriteTokens, default);
            csv.WriteField(r.OutputTokens, default);
            csv.WriteField(r.ReasoningTokens, default);
            csv.WriteField(r.TotalTokens, default);
            csv.WriteField(r.CostUsd, default);
            csv.WriteField(UsageStatusNames.GetName(r.Status));
            csv.WriteField(r.SessionId);
            csv.WriteField(r.ProblemId);
            csv.WriteField(r.Tags is { Count: > 0 } tags ? MetadataJson(tags, metadata) : null);
            csv.WriteField(r.Operation);
            csv.WriteField(r.RequestModel);
            if (CsvCells.TryFormatThousandths(r.DurationMs, cell, out written))
            {
                csv.WriteField(cell.AsSpan(0, written));
            }
            else
            {
                csv.WriteField(Math.Round(r.DurationMs, 3), default);
            }

            csv.WriteField(r.HttpStatus, default);
            csv.WriteField(r.Streaming);
            csv.WriteField(CostSourceNames.Of(CostSourceNames.Effective(r)));
            csv.WriteField(r.PriceId);
            await csv.EndRecordAsync(cancellationToken).ConfigureAwait(false);
        }

        await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The metadata cell: the tags as JSON, serialized once per dictionary instance (a store may hand
    /// out one shared, read-only dictionary for every row with the same tags).
    /// </summary>
    private static string MetadataJson(IReadOnlyDictionary<string, string> tags, Dictionary<IReadOnlyDictionary<string, string>, string> cache)
    {
        if (cache.TryGetValue(tags, out var json))
        {
            return json;
        }

        if (cache.Count >= MaxCachedMetadata)
        {
            cache.Clear();
        }

        json = JsonSerializer.Serialize(tags);
        cache[tags] = json;
        return json;
    }

    private static void WriteTimestamp(CsvWriter csv, DateTimeOffset? value)
    {
        if (value is { } v)
        {
            csv.WriteField(v, default);
        }
        else
        {
            csv.WriteField((string?)null);
        }
    }
}
