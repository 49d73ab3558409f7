using System.Globalization;

namespace TokenMeter.Pricing;

/// <summary>
/// The price of one model on one tier from one date on, in US dollars per million tokens, plus
/// the per-unit prices of the call kinds that are not billed by tokens (images by size and
/// quality, audio by the minute, speech by the character).
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
    /// <summary>The cache-write price is this many times the input price unless set.</summary>
    public const decimal DefaultCacheWriteMultiplier = 1.25m;

    private const decimal Million = 1_000_000m;

    /// <summary>Price of a million audio input tokens; null when audio input is priced as text.</summary>
    public decimal? AudioInputPerMillion { get; init; }

    /// <summary>Price of a million audio output tokens; null when audio output is priced as text.</summary>
    public decimal? AudioOutputPerMillion { get; init; }

    /// <summary>Price of a million input tokens written to the prompt cache; null means 1.25 × <see cref="InputPerMillion"/>.</summary>
    public decimal? CacheWritePerMillion { get; init; }

    /// <summary>Price of a million image input tokens (image models); null when image input is priced as text.</summary>
    public decimal? ImageInputPerMillion { get; init; }

    /// <summary>Price of a minute of audio, for transcriptions that report their duration instead of tokens.</summary>
    public decimal? PerMinute { get; init; }

    /// <summary>Price of a million characters of input text (speech models billed by the character).</summary>
    public decimal? PerMillionCharacters { get; init; }

    /// <summary>
    /// Price of one image by <c>quality/size</c> (e.g. <c>hd/1024x1792</c>), for image models
    /// billed per image; a key with the size alone applies to every quality. Keys are lower case.
    /// </summary>
    public IReadOnlyDictionary<string, decimal>? PerImage { get; init; }

    /// <summary>Prices that replace the token prices for a call whose input is above a size; null when the model has none.</summary>
    public LongContextPrice? LongContext { get; init; }

    /// <summary>The identity stored in <see cref="UsageRecord.PriceId"/>, e.g. <c>gpt-4o/standard/2024-08-06</c>.</summary>
    public string Id => string.Create(
        CultureInfo.InvariantCulture,
        $"{Model}/{TierName(Tier)}/{EffectiveFrom:yyyy-MM-dd}");

    /// <summary>
    /// The exact cost of a call at this price: uncached input × input price + cached input ×
    /// cached price + cache writes × cache-write price + output × output price, with audio and
    /// image tokens at their own prices when this price has them, and long-context prices above
    /// their threshold. Reasoning tokens are part of the output tokens and are not added again.
    /// Calls billed per image, minute or character are priced by those units.
    /// </summary>
    /// <param name="record">The call's token counts and billable units.</param>
    /// <returns>The cost in US dollars.</returns>
    /// <exception cref="InvalidOperationException">The call is billed per image and this price has no price for its size and quality.</exception>
    public decimal CalculateCost(UsageRecord record) =>
        TryCalculateCost(record, out var cost)
            ? cost
            : throw new InvalidOperationException($"The price {Id} has no per-image price for this call's size and quality.");

    /// <summary>The cost of a call at this price, or false when this price cannot price it (an image size or quality it has no price for).</summary>
    /// <param name="record">The call's token counts and billable units.</param>
    /// <param name="costUsd">The cost in US dollars.</param>
    /// <returns>Whether the call could be priced.</returns>
    public bool TryCalculateCost(UsageRecord record, out decimal costUsd) => TryCalculateCost(record, out costUsd, out _);

    /// <summary>As <see cref="TryCalculateCost(UsageRecord, out decimal)"/>; <paramref name="byUnits"/> tells a call priced per image, minute or character (exact units, never estimated tokens).</summary>
    internal bool TryCalculateCost(UsageRecord record, out decimal costUsd, out bool byUnits)
    {
        ArgumentNullException.ThrowIfNull(record);
        costUsd = 0m;
        byUnits = true;
        var tokens = record.InputTokens + record.OutputTokens;

        if (PerImage is not null && tokens == 0)
        {
            var images = BillingTags.Long(record, BillingTags.Images);
            if (images > 0)
            {
                var size = (BillingTags.Text(record, BillingTags.ImageSize) ?? "1024x1024").ToLowerInvariant();
                var quality = (BillingTags.Text(record, BillingTags.ImageQuality) ?? "standard").ToLowerInvariant();
                if (!PerImage.TryGetValue(quality + "/" + size, out var each) && !PerImage.TryGetValue(size, out each))
                {
                    return false;
                }

                costUsd = images * each;
                return true;
            }
        }

        if (PerMinute is { } perMinute && tokens == 0 && BillingTags.Decimal(record, BillingTags.AudioSeconds) is { } seconds)
        {
            costUsd = seconds * perMinute / 60m;
            return true;
        }

        if (PerMillionCharacters is { } perCharacters && record.Tags?.ContainsKey(BillingTags.InputCharacters) == true)
        {
            costUsd = BillingTags.Long(record, BillingTags.InputCharacters) * perCharacters / Million;
            return true;
        }

        byUnits = false;
        costUsd = CalculateTokenCost(record.InputTokens, record.CachedInputTokens, record.CacheWriteTokens, record.OutputTokens, record.AudioInputTokens, record.AudioOutputTokens, BillingTags.Long(record, BillingTags.ImageInputTokens));
        return true;
    }

    /// <summary>
    /// The cost of token counts at this price, e.g. a call's worst case before it is made (prompt
    /// tokens + its maximum output tokens).
    /// </summary>
    /// <param name="inputTokens">Input tokens, cached and cache-write ones included.</param>
    /// <param name="outputTokens">Output tokens.</param>
    /// <param name="cachedInputTokens">Cached input tokens (a part of the input tokens).</param>
    /// <param name="cacheWriteTokens">Input tokens written to the cache (a part of the input tokens).</param>
    /// <returns>The cost in US dollars.</returns>
    public decimal CalculateCost(long inputTokens, long outputTokens, long cachedInputTokens = 0, long cacheWriteTokens = 0) =>
        CalculateTokenCost(inputTokens, cachedInputTokens, cacheWriteTokens, outputTokens, 0, 0, 0);

    internal static string TierName(PriceTier tier) => tier switch
    {
        PriceTier.Standard => "standard",
        PriceTier.Batch => "batch",
        PriceTier.Flex => "flex",
        PriceTier.Priority => "priority",
        _ => tier.ToString().ToLowerInvariant(),
    };

    private decimal CalculateTokenCost(long inputTokens, long cachedTokens, long cacheWriteTokens, long outputTokens, long audioInputTokens, long audioOutputTokens, long imageInputTokens)
    {
        var input = Math.Max(inputTokens, 0);
        var cached = Math.Clamp(cachedTokens, 0, input);
        var cacheWrite = Math.Clamp(cacheWriteTokens, 0, input - cached);
        var imageIn = ImageInputPerMillion is null ? 0 : Math.Clamp(imageInputTokens, 0, input - cached - cacheWrite);
        var audioIn = AudioInputPerMillion is null ? 0 : Math.Clamp(audioInputTokens, 0, input - cached - cacheWrite - imageIn);
        var textIn = input - cached - cacheWrite - imageIn - audioIn;
        var output = Math.Max(outputTokens, 0);
        var audioOut = AudioOutputPerMillion is null ? 0 : Math.Clamp(audioOutputTokens, 0, output);
        var textOut = output - audioOut;

        var longContext = LongContext is { } l && input > l.AboveInputTokens ? l : null;
        var inputPrice = longContext?.InputPerMillion ?? InputPerMillion;
        var cachedPrice = longContext is null ? CachedInputPerMillion ?? InputPerMillion : longContext.CachedInputPerMillion ?? longContext.InputPerMillion;
        var cacheWritePrice = longContext is null
            ? CacheWritePerMillion ?? (InputPerMillion * DefaultCacheWriteMultiplier)
            : longContext.CacheWritePerMillion ?? (longContext.InputPerMillion * DefaultCacheWriteMultiplier);
        var outputPrice = longContext?.OutputPerMillion ?? OutputPerMillion;

        var perMillion = (textIn * inputPrice)
            + (cached * cachedPrice)
            + (cacheWrite * cacheWritePrice)
            + (imageIn * (ImageInputPerMillion ?? 0m))
            + (audioIn * (AudioInputPerMillion ?? 0m))
            + (textOut * outputPrice)
            + (audioOut * (AudioOutputPerMillion ?? 0m));
        return perMillion / Million;
    }
}

/// <summary>Token prices that apply to a whole call once its input is above a size (US dollars per million tokens).</summary>
/// <param name="AboveInputTokens">The prices apply to calls with more input tokens than this.</param>
/// <param name="InputPerMillion">Price of a million uncached input tokens.</param>
/// <param name="CachedInputPerMillion">Price of a million cached input tokens; null means the input price.</param>
/// <param name="OutputPerMillion">Price of a million output tokens.</param>
public sealed record LongContextPrice(long AboveInputTokens, decimal InputPerMillion, decimal? CachedInputPerMillion, decimal OutputPerMillion)
{
    /// <summary>Price of a million cache-write tokens; null means 1.25 × <see cref="InputPerMillion"/>.</summary>
    public decimal? CacheWritePerMillion { get; init; }
}
