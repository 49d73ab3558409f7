using System.Globalization;

namespace TokenMeter.Pricing;

/// <summary>
/// The price of one model on one tier from one date on, in US dollars per million tokens.
/// </summary>
/// <param name="Model">The model family or exact model name, e.g. <c>gpt-4o</c>.</param>
/// <param name="Tier">The processing tier.</param>
/// <param name="EffectiveFrom">The first UTC day this price applies to.</param>
/// <param name="InputPerMillion">Price of a million uncached input tokens.</param>
/// <param name="CachedInputPerMillion">Price of a million cached input tokens; null when the model has no cache discount (the input price applies).</param>
/// <param name="OutputPerMillion">Price of a million output tokens (reasoning tokens included).</param>
public sealed record ModelPrice(
    string Model,
    PriceTier Tier,
    DateOnly EffectiveFrom,
    decimal InputPerMillion,
    decimal? CachedInputPerMillion,
    decimal OutputPerMillion)
{
    private const decimal Million = 1_000_000m;

    /// <summary>Price of a million audio input tokens; null when audio input is priced as text.</summary>
    public decimal? AudioInputPerMillion { get; init; }

    /// <summary>Price of a million audio output tokens; null when audio output is priced as text.</summary>
    public decimal? AudioOutputPerMillion { get; init; }

    /// <summary>The identity stored in <see cref="UsageRecord.PriceId"/>, e.g. <c>gpt-4o/standard/2024-08-06</c>.</summary>
    public string Id => string.Create(
        CultureInfo.InvariantCulture,
        $"{Model}/{TierName(Tier)}/{EffectiveFrom:yyyy-MM-dd}");

    /// <summary>
    /// The exact cost of a call at this price: uncached input × input price + cached input ×
    /// cached price + output × output price, with audio tokens at the audio prices when this price
    /// has them. Reasoning tokens are part of the output tokens and are not added again.
    /// </summary>
    /// <param name="record">The call's token counts.</param>
    /// <returns>The cost in US dollars.</returns>
    public decimal CalculateCost(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);

        var cached = Math.Clamp(record.CachedInputTokens, 0, Math.Max(record.InputTokens, 0));
        var audioIn = AudioInputPerMillion is null ? 0 : Math.Clamp(record.AudioInputTokens, 0, Math.Max(record.InputTokens - cached, 0));
        var textIn = Math.Max(record.InputTokens - cached - audioIn, 0);
        var audioOut = AudioOutputPerMillion is null ? 0 : Math.Clamp(record.AudioOutputTokens, 0, Math.Max(record.OutputTokens, 0));
        var textOut = Math.Max(record.OutputTokens - audioOut, 0);

        var perMillion = (textIn * InputPerMillion)
            + (cached * (CachedInputPerMillion ?? InputPerMillion))
            + (audioIn * (AudioInputPerMillion ?? 0m))
            + (textOut * OutputPerMillion)
            + (audioOut * (AudioOutputPerMillion ?? 0m));
        return perMillion / Million;
    }

    internal static string TierName(PriceTier tier) => tier switch
    {
        PriceTier.Standard => "standard",
        PriceTier.Batch => "batch",
        PriceTier.Flex => "flex",
        PriceTier.Priority => "priority",
        _ => tier.ToString().ToLowerInvariant(),
    };
}
