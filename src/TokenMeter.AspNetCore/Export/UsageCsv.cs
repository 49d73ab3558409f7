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
    /// <summary>Rows per page of the summary and statement exports.</summary>
    internal const int ChunkSize = 500;

    /// <summary>
    /// Rows of the detailed export read before each directory lookup and flush: large enough that the
    /// reader, the writer and the response's socket hand over to each other rarely (each hand-over wakes
    /// a thread), small enough that the read-ahead stays a few MiB.
    /// </summary>
    internal const int DetailedChunkSize = 2_000;

    /// <summary>Chunks the store's reader may run ahead of the writer (bounds the memory of an export).</summary>
    internal const int ReadAheadChunks = 2;

    /// <summary>Users whose name and email cells a detailed export keeps; past it the cache starts over.</summary>
    internal const int MaxCachedUsers = 10_000;

    /// <summary>A user's username and email cells from a directory lookup (empty cells for a user it does not know).</summary>
    internal static (byte[] Username, byte[] Email) UserCells(Utf8CsvWriter csv, IReadOnlyDictionary<string, UserDirectoryEntry> found, string id) =>
        found.TryGetValue(id, out var entry) && entry is not null ? (csv.Encode(entry.Username), csv.Encode(entry.Email)) : ([], []);

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

    public static async Task WriteDetailedAsync(Utf8CsvWriter csv, HttpContext context, UsageExportQuery query, CancellationToken cancellationToken)
    {
        var queries = context.RequestServices.GetRequiredService<IUsageQueries>();
        var directory = context.RequestServices.GetService<IUserDirectory>();
        if (queries is IUsageExportRowSource rows)
        {
            await WriteDetailedRowsAsync(csv, rows, directory, query, cancellationToken).ConfigureAwait(false);
            return;
        }

        await WriteDetailedRecordsAsync(csv, queries, directory, query, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The detailed export from the store's records (any store).</summary>
    internal static async Task WriteDetailedRecordsAsync(Utf8CsvWriter csv, IUsageQueries queries, IUserDirectory? directory, UsageExportQuery query, CancellationToken cancellationToken)
    {
        var cells = new DetailedCells(csv, directory);
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
                await cells.WriteChunkAsync(chunk, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await reader.ConfigureAwait(false);
        }
    }

    /// <summary>The detailed export from a store that hands its rows over raw (the same bytes as from records).</summary>
    internal static async Task WriteDetailedRowsAsync(Utf8CsvWriter csv, IUsageExportRowSource rows, IUserDirectory? directory, UsageExportQuery query, CancellationToken cancellationToken)
    {
        var cells = new DetailedRowCells(csv, directory);
        csv.WriteHeader(DetailedHeader);
        await foreach (var block in rows.ExportBlocksAsync(query, cancellationToken).ConfigureAwait(false))
        {
            await cells.WriteBlockAsync(block, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task ReadChunksAsync(IUsageQueries queries, UsageExportQuery query, ChannelWriter<List<UsageRecord>> chunks, CancellationToken cancellationToken)
    {
        try
        {
            var chunk = new List<UsageRecord>(DetailedChunkSize);
            await foreach (var record in queries.ExportAsync(query, cancellationToken).ConfigureAwait(false))
            {
                chunk.Add(record);
                if (chunk.Count == DetailedChunkSize)
                {
                    await chunks.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
                    chunk = new List<UsageRecord>(DetailedChunkSize);
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

    /// <summary>
    /// The detailed export's rows. The cells repeated on many rows are encoded once per export: the
    /// user's name and email per user (looked up in the directory once per chunk for the users not seen
    /// yet), the metadata JSON per tags dictionary (a store may hand out one shared, read-only
    /// dictionary for every row with the same tags).
    /// </summary>
    private sealed class DetailedCells(Utf8CsvWriter csv, IUserDirectory? directory)
    {
        private readonly Dictionary<string, (byte[] Username, byte[] Email)> _users = new(StringComparer.Ordinal);
        private readonly Dictionary<IReadOnlyDictionary<string, string>, byte[]> _metadata = new(ReferenceEqualityComparer.Instance);

        public async ValueTask WriteChunkAsync(List<UsageRecord> chunk, CancellationToken cancellationToken)
        {
            if (chunk.Count == 0)
            {
                return;
            }

            if (directory is not null)
            {
                await LookUpUsersAsync(chunk, directory, cancellationToken).ConfigureAwait(false);
            }

            foreach (var r in chunk)
            {
                WriteRow(r);
            }

            await csv.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        private void WriteRow(UsageRecord r)
        {
            csv.WriteGuid(r.Id);
            csv.WriteTimestamp(r.CreatedAt);
            csv.WriteText(r.UserId);
            if (r.UserId is not null && _users.TryGetValue(r.UserId, out var user))
            {
                csv.WriteEncoded(user.Username);
                csv.WriteEncoded(user.Email);
            }
            else
            {
                csv.WriteText(null);
                csv.WriteText(null);
            }

            csv.WriteText(r.Endpoint);
            csv.WriteText(r.Model ?? r.RequestModel);
            csv.WriteTokensAndCost(r.InputTokens, r.CachedInputTokens, r.CacheWriteTokens, r.OutputTokens, r.ReasoningTokens, r.TotalTokens, r.CostUsd);
            csv.WriteText(UsageStatusNames.GetName(r.Status));
            csv.WriteText(r.SessionId);
            csv.WriteText(r.ProblemId);
            if (r.Tags is { Count: > 0 } tags)
            {
                csv.WriteEncoded(Metadata(tags));
            }
            else
            {
                csv.WriteText(null);
            }

            csv.WriteText(r.Operation);
            csv.WriteText(r.RequestModel);
            csv.WriteThousandths(r.DurationMs);
            csv.WriteInt32(r.HttpStatus);
            csv.WriteBoolean(r.Streaming);
            csv.WriteText(CostSourceNames.Of(CostSourceNames.Effective(r)));
            csv.WriteText(r.PriceId);
            csv.EndRow();
        }

        private async ValueTask LookUpUsersAsync(List<UsageRecord> chunk, IUserDirectory directory, CancellationToken cancellationToken)
        {
            HashSet<string>? missing = null;
            foreach (var r in chunk)
            {
                if (r.UserId is { } id && !_users.ContainsKey(id))
                {
                    (missing ??= new HashSet<string>(StringComparer.Ordinal)).Add(id);
                }
            }

            if (missing is null)
            {
                return;
            }

            if (_users.Count + missing.Count > MaxCachedUsers)
            {
                _users.Clear();
            }

            var found = await directory.GetUsersAsync(missing, cancellationToken).ConfigureAwait(false);
            foreach (var id in missing)
            {
                _users[id] = UserCells(csv, found, id);
            }
        }

        /// <summary>The metadata cell: the tags as JSON, serialized and encoded once per dictionary instance.</summary>
        private byte[] Metadata(IReadOnlyDictionary<string, string> tags)
        {
            if (_metadata.TryGetValue(tags, out var cell))
            {
                return cell;
            }

            if (_metadata.Count >= MaxCachedMetadata)
            {
                _metadata.Clear();
            }

            cell = csv.Encode(JsonSerializer.Serialize(tags));
            _metadata[tags] = cell;
            return cell;
        }
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
