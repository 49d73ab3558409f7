using System.Globalization;

namespace TokenMeter.Pricing;

/// <summary>
/// The billable units a record keeps in its tags besides token counts, so that it can be priced
/// again later exactly as it was priced at first: audio seconds, input characters, images with
/// their size and quality, image input tokens, and which counts were estimated.
/// </summary>
public static class BillingTags
{
    /// <summary>Seconds of audio a transcription reported (<c>usage.type = duration</c>).</summary>
    public const string AudioSeconds = "audio_seconds";

    /// <summary>Characters of a speech request's input text.</summary>
    public const string InputCharacters = "tokenmeter.input_characters";

    /// <summary>Number of images an images call returned.</summary>
    public const string Images = "tokenmeter.images";

    /// <summary>The requested image size, e.g. <c>1024x1024</c>.</summary>
    public const string ImageSize = "tokenmeter.image_size";

    /// <summary>The requested image quality, e.g. <c>standard</c> or <c>hd</c>.</summary>
    public const string ImageQuality = "tokenmeter.image_quality";

    /// <summary>Image input tokens (a part of input tokens) of an images call.</summary>
    public const string ImageInputTokens = "tokenmeter.image_input_tokens";

    /// <summary>Which counts were estimated locally: <c>input</c>, <c>output</c> or <c>input,output</c>.</summary>
    public const string Estimated = "tokenmeter.estimated";

    /// <summary>The <c>custom_id</c> of a Batch API request line.</summary>
    public const string BatchCustomId = "tokenmeter.batch_custom_id";

    /// <summary>Whether any of the record's counts were estimated rather than reported.</summary>
    /// <param name="record">The record.</param>
    /// <returns>True when estimated.</returns>
    public static bool IsEstimated(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return record.Status == UsageStatus.Estimated || (record.Tags?.ContainsKey(Estimated) ?? false);
    }

    internal static long Long(UsageRecord record, string key) =>
        record.Tags is { } tags && tags.TryGetValue(key, out var text) && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : 0;

    internal static decimal? Decimal(UsageRecord record, string key) =>
        record.Tags is { } tags && tags.TryGetValue(key, out var text) && decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) ? value : null;

    internal static string? Text(UsageRecord record, string key) =>
        record.Tags is { } tags && tags.TryGetValue(key, out var text) ? text : null;
}
