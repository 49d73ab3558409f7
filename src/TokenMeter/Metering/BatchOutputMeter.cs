using System.Text;
using System.Text.Json;
using TokenMeter.Attribution;
using TokenMeter.Pricing;

namespace TokenMeter.Metering;

/// <summary>
/// Meters a Batch API output file as the app downloads it through the SDK (<c>GET /files/{id}/content</c>):
/// one record per request line, at the batch tier, with an id derived from the line's request id so
/// that downloading the same file twice stores each request once. A file that is not a batch
/// output (no <c>custom_id</c> and <c>response</c> on its lines) records nothing.
/// </summary>
internal static class BatchOutputMeter
{
    /// <summary>Whether a request is the download of a file's content.</summary>
    public static bool IsFileContent(ReadOnlySpan<char> path) =>
        path.EndsWith("/content", StringComparison.Ordinal) && path.Contains("/files/", StringComparison.Ordinal);

    /// <summary>Records every request line of <paramref name="jsonl"/>; returns how many.</summary>
    public static int Record(UsageMeter meter, ReadOnlySpan<byte> jsonl, UsageScope? scope, IBatchAttribution? attribution, DateTimeOffset downloadedAt)
    {
        var count = 0;
        while (!jsonl.IsEmpty)
        {
            var end = jsonl.IndexOf((byte)'\n');
            var line = (end < 0 ? jsonl : jsonl[..end]).TrimEnd((byte)'\r');
            jsonl = end < 0 ? default : jsonl[(end + 1)..];
            if (line.IsEmpty)
            {
                continue;
            }

            UsageRecord? record;
            try
            {
                record = Line(line, scope, attribution, downloadedAt);
            }
            catch (JsonException)
            {
                // Not JSON Lines of a batch output: stop at the first line that is not.
                return count;
            }

            if (record is null)
            {
                return count;
            }

            meter.Record(record, scope);
            count++;
        }

        return count;
    }

    private static UsageRecord? Line(ReadOnlySpan<byte> line, UsageScope? scope, IBatchAttribution? attribution, DateTimeOffset downloadedAt)
    {
        using var document = JsonDocument.Parse(line.ToArray());
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object
            || !root.TryGetProperty("custom_id", out var customIdElement) || customIdElement.ValueKind != JsonValueKind.String
            || !root.TryGetProperty("response", out var response))
        {
            return null;
        }

        var customId = customIdElement.GetString()!;
        var requestId = root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String ? idElement.GetString()! : customId;
        var statusCode = response.ValueKind == JsonValueKind.Object && response.TryGetProperty("status_code", out var code) && code.TryGetInt32(out var c) ? c : 0;
        var usage = default(ParsedUsage);
        var operation = UsageOperation.Batch;
        var createdAt = downloadedAt;
        if (response.ValueKind == JsonValueKind.Object && response.TryGetProperty("body", out var body) && body.ValueKind == JsonValueKind.Object)
        {
            _ = UsageParser.TryParse(Encoding.UTF8.GetBytes(body.GetRawText()), ref usage);
            operation = body.TryGetProperty("object", out var kind) ? kind.GetString() switch
            {
                "chat.completion" => UsageOperation.Chat,
                "response" => UsageOperation.Responses,
                "list" => UsageOperation.Embeddings,
                "text_completion" => UsageOperation.TextCompletion,
                _ => UsageOperation.Batch,
            }
            : UsageOperation.Batch;

            // When the request ran: a second download then makes the same id, and the store keeps one.
            if ((body.TryGetProperty("created", out var created) || body.TryGetProperty("created_at", out created)) && created.TryGetInt64(out var seconds) && seconds > 0)
            {
                createdAt = DateTimeOffset.FromUnixTimeSeconds(seconds);
            }
        }

        var context = attribution?.Attribute(customId, scope?.Context) ?? scope?.Context;
        var status = statusCode is >= 200 and < 300 ? (usage.HasUsage ? UsageStatus.Ok : UsageStatus.UsageMissing) : UsageStatus.HttpError;
        var record = UsageMeter.BuildRecord(createdAt, context, null, operation, usage.Model, usage, 0, status, statusCode == 0 ? null : statusCode, false);
        var tags = record.Tags is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(record.Tags, StringComparer.Ordinal);
        tags[BillingTags.BatchCustomId] = customId.Length > 256 ? customId[..256] : customId;
        return record with
        {
            Id = UsageIds.FromKey(createdAt, requestId),
            ServiceTier = "batch",
            Tags = tags,
        };
    }
}
