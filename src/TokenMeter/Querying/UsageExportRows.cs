namespace TokenMeter.Querying;

/// <summary>
/// A store that can hand the detailed export its rows as raw column values (UTF-8 text as stored,
/// numbers), block by block, without a <see cref="UsageRecord"/> or a string per row. The CSV export
/// uses it when the store offers it and <see cref="IUsageQueries.ExportAsync"/> otherwise; both give
/// the same rows in the same order (the same days, user and ordering).
/// </summary>
internal interface IUsageExportRowSource
{
    /// <summary>The rows of <paramref name="query"/>, oldest first, in blocks.</summary>
    /// <param name="query">Days and user to export.</param>
    /// <param name="cancellationToken">Cancels the stream.</param>
    /// <returns>
    /// The blocks. A block is valid until the enumerator moves on (its memory is reused), so it
    /// must be read before asking for the next.
    /// </returns>
    IAsyncEnumerable<UsageExportBlock> ExportBlocksAsync(UsageExportQuery query, CancellationToken cancellationToken = default);
}

/// <summary>A block of export rows; read them with <see cref="TryRead"/> from a position starting at 0, as often as needed.</summary>
internal abstract class UsageExportBlock
{
    /// <summary>Reads the row at <paramref name="position"/> and moves it to the next row.</summary>
    /// <param name="position">Where the row starts: 0 for the first; advanced past the row read.</param>
    /// <param name="row">The row; its text refers to the block's memory.</param>
    /// <returns>False after the last row.</returns>
    public abstract bool TryRead(ref int position, out UsageExportRow row);

    /// <summary>Reads only the user id of the row at <paramref name="position"/> (cheaper than the whole row) and moves to the next row.</summary>
    /// <param name="position">Where the row starts; advanced past it.</param>
    /// <param name="userId">The row's user id.</param>
    /// <returns>False after the last row.</returns>
    public abstract bool TryReadUserId(ref int position, out Utf8Column userId);

    /// <summary>The tags of a <see cref="UsageExportRow.Metadata"/> value, as <see cref="UsageRecord.Tags"/> would hold them.</summary>
    /// <param name="metadata">The stored metadata.</param>
    /// <returns>The tags, or null.</returns>
    public abstract IReadOnlyDictionary<string, string>? ParseMetadata(ReadOnlySpan<byte> metadata);
}

/// <summary>A text column as stored: its UTF-8 bytes, or null.</summary>
internal readonly ref struct Utf8Column
{
    public Utf8Column(ReadOnlySpan<byte> value, bool isNull)
    {
        Value = value;
        IsNull = isNull;
    }

    /// <summary>The UTF-8 bytes (empty when null).</summary>
    public ReadOnlySpan<byte> Value { get; }

    /// <summary>Whether the column is null.</summary>
    public bool IsNull { get; }
}

/// <summary>
/// One stored call as the detailed export reads it: the columns of <see cref="UsageRecord"/> the
/// CSV writes, text as UTF-8 bytes. <see cref="CostSource"/> is the stored name (null on rows
/// stored before cost sources existed).
/// </summary>
internal ref struct UsageExportRow
{
    public Guid Id;
    public DateTimeOffset CreatedAt;
    public Utf8Column UserId;
    public Utf8Column Endpoint;
    public Utf8Column Operation;
    public Utf8Column RequestModel;
    public Utf8Column Model;
    public long InputTokens;
    public long CachedInputTokens;
    public long CacheWriteTokens;
    public long OutputTokens;
    public long ReasoningTokens;
    public long TotalTokens;
    public decimal? CostUsd;
    public Utf8Column PriceId;
    public double DurationMs;
    public Utf8Column Status;
    public int? HttpStatus;
    public bool Streaming;
    public Utf8Column SessionId;
    public Utf8Column ProblemId;
    public Utf8Column Metadata;
    public Utf8Column CostSource;
}
