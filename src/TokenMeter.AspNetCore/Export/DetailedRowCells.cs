using System.Text;
using System.Text.Json;
using TokenMeter.Pricing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Export;

/// <summary>
/// The detailed export's rows from a store's raw rows (<see cref="IUsageExportRowSource"/>): the same
/// bytes as the rows written from records, without a record or a string per row. Text columns are
/// copied as stored when they are plain ASCII (anything else takes the writer's general path); the
/// cells derived from a repeated value — a user's name and email, the metadata JSON, the status name —
/// are found by the value's bytes and computed once per export.
/// </summary>
internal sealed class DetailedRowCells
{
    private const int MaxCachedMetadata = 4_096;
    private const int MaxCachedStatuses = 256;

    private readonly Utf8CsvWriter _csv;
    private readonly IUserDirectory? _directory;
    private readonly Dictionary<byte[], (byte[] Username, byte[] Email)> _users = new(Utf8KeyComparer.Instance);
    private readonly Dictionary<byte[], (byte[]? Cell, bool Estimated)> _metadata = new(Utf8KeyComparer.Instance);
    private readonly Dictionary<byte[], (byte[] Cell, UsageStatus Status)> _statuses = new(Utf8KeyComparer.Instance);

    // Looked up by the stored bytes (no array per row).
    private readonly Dictionary<byte[], (byte[] Username, byte[] Email)>.AlternateLookup<ReadOnlySpan<byte>> _userLookup;
    private readonly Dictionary<byte[], (byte[]? Cell, bool Estimated)>.AlternateLookup<ReadOnlySpan<byte>> _metadataLookup;
    private readonly Dictionary<byte[], (byte[] Cell, UsageStatus Status)>.AlternateLookup<ReadOnlySpan<byte>> _statusLookup;

    public DetailedRowCells(Utf8CsvWriter csv, IUserDirectory? directory)
    {
        _csv = csv;
        _directory = directory;
        _userLookup = _users.GetAlternateLookup<ReadOnlySpan<byte>>();
        _metadataLookup = _metadata.GetAlternateLookup<ReadOnlySpan<byte>>();
        _statusLookup = _statuses.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    public async ValueTask WriteBlockAsync(UsageExportBlock block, CancellationToken cancellationToken)
    {
        if (_directory is not null)
        {
            await LookUpUsersAsync(block, _directory, cancellationToken).ConfigureAwait(false);
        }

        var position = 0;
        while (block.TryRead(ref position, out var row))
        {
            WriteRow(block, ref row);
        }

        await _csv.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private void WriteRow(UsageExportBlock block, ref UsageExportRow r)
    {
        _csv.WriteGuid(r.Id);
        _csv.WriteTimestamp(r.CreatedAt);
        _csv.WriteUtf8Text(r.UserId.Value, r.UserId.IsNull);
        if (!r.UserId.IsNull && _userLookup.TryGetValue(r.UserId.Value, out var user))
        {
            _csv.WriteEncoded(user.Username);
            _csv.WriteEncoded(user.Email);
        }
        else
        {
            _csv.WriteText(null);
            _csv.WriteText(null);
        }

        _csv.WriteUtf8Text(r.Endpoint.Value, r.Endpoint.IsNull);
        var model = r.Model.IsNull ? r.RequestModel : r.Model;
        _csv.WriteUtf8Text(model.Value, model.IsNull);
        _csv.WriteTokensAndCost(r.InputTokens, r.CachedInputTokens, r.CacheWriteTokens, r.OutputTokens, r.ReasoningTokens, r.TotalTokens, r.CostUsd);
        var status = Status(r.Status);
        _csv.WriteEncoded(status.Cell);
        _csv.WriteUtf8Text(r.SessionId.Value, r.SessionId.IsNull);
        _csv.WriteUtf8Text(r.ProblemId.Value, r.ProblemId.IsNull);
        var estimatedTag = false;
        if (r.Metadata.IsNull)
        {
            _csv.WriteText(null);
        }
        else
        {
            var metadata = Metadata(block, r.Metadata.Value);
            estimatedTag = metadata.Estimated;
            if (metadata.Cell is { } cell)
            {
                _csv.WriteEncoded(cell);
            }
            else
            {
                _csv.WriteText(null);
            }
        }

        _csv.WriteUtf8Text(r.Operation.Value, r.Operation.IsNull);
        _csv.WriteUtf8Text(r.RequestModel.Value, r.RequestModel.IsNull);
        _csv.WriteThousandths(r.DurationMs);
        _csv.WriteInt32(r.HttpStatus);
        _csv.WriteBoolean(r.Streaming);
        _csv.WriteText(CostSourceNames.Of(EffectiveCostSource(r.CostUsd is null, r.CostSource, status.Status == UsageStatus.Estimated || estimatedTag)));
        _csv.WriteUtf8Text(r.PriceId.Value, r.PriceId.IsNull);
        _csv.EndRow();
    }

    /// <summary>
    /// What <see cref="CostSourceNames.Effective"/> makes of the record the store would read: a stored
    /// name it does not know (or none) is unpriced without a cost and reported with one.
    /// </summary>
    private static CostSource EffectiveCostSource(bool costIsNull, Utf8Column stored, bool estimated)
    {
        if (costIsNull)
        {
            return CostSource.Unpriced;
        }

        var source = stored.IsNull ? CostSource.Reported
            : stored.Value.SequenceEqual("estimated"u8) ? CostSource.Estimated
            : stored.Value.SequenceEqual("unpriced"u8) ? CostSource.Unpriced
            : CostSource.Reported;
        return source == CostSource.Unpriced ? (estimated ? CostSource.Estimated : CostSource.Reported) : source;
    }

    /// <summary>The status cell (the stored name read and written back, as a record would be) and the status.</summary>
    private (byte[] Cell, UsageStatus Status) Status(Utf8Column stored)
    {
        if (_statusLookup.TryGetValue(stored.Value, out var known))
        {
            return known;
        }

        if (_statuses.Count >= MaxCachedStatuses)
        {
            _statuses.Clear();
        }

        var status = UsageStatusNames.Parse(Encoding.UTF8.GetString(stored.Value));
        known = (_csv.Encode(UsageStatusNames.GetName(status)), status);
        _statuses[stored.Value.ToArray()] = known;
        return known;
    }

    /// <summary>The metadata cell (the tags as JSON, as a record's tags are written; null for no tags) and whether the tags mark the record estimated.</summary>
    private (byte[]? Cell, bool Estimated) Metadata(UsageExportBlock block, ReadOnlySpan<byte> stored)
    {
        if (_metadataLookup.TryGetValue(stored, out var known))
        {
            return known;
        }

        if (_metadata.Count >= MaxCachedMetadata)
        {
            _metadata.Clear();
        }

        var tags = block.ParseMetadata(stored);
        known = tags is { Count: > 0 }
            ? (_csv.Encode(JsonSerializer.Serialize(tags)), tags.ContainsKey(BillingTags.Estimated))
            : (null, false);
        _metadata[stored.ToArray()] = known;
        return known;
    }

    private async ValueTask LookUpUsersAsync(UsageExportBlock block, IUserDirectory directory, CancellationToken cancellationToken)
    {
        var missing = MissingUsers(block);
        if (missing is null)
        {
            return;
        }

        if (_users.Count + missing.Count > UsageCsv.MaxCachedUsers)
        {
            // Start over with this block's users only (every one of them is looked up again).
            _users.Clear();
            missing = MissingUsers(block)!;
        }

        var found = await directory.GetUsersAsync(missing, cancellationToken).ConfigureAwait(false);
        foreach (var id in missing)
        {
            _users[Encoding.UTF8.GetBytes(id)] = UsageCsv.UserCells(_csv, found, id);
        }
    }

    private HashSet<string>? MissingUsers(UsageExportBlock block)
    {
        HashSet<string>? missing = null;
        var position = 0;
        while (block.TryReadUserId(ref position, out var userId))
        {
            if (!userId.IsNull && !_userLookup.ContainsKey(userId.Value))
            {
                (missing ??= new HashSet<string>(StringComparer.Ordinal)).Add(Encoding.UTF8.GetString(userId.Value));
            }
        }

        return missing;
    }

    /// <summary>Byte arrays compared by content, looked up by a span without copying it.</summary>
    private sealed class Utf8KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly Utf8KeyComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x is null ? y is null : y is not null && x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = default(HashCode);
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}
