using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace TokenMeter.Pricing;

/// <summary>
/// Prices from configuration, bound from <c>TokenMeter:Pricing</c>. Each entry of
/// <see cref="Models"/> adds a price, or replaces the built-in one with the same model, tier and
/// <c>EffectiveFrom</c>. Shape:
/// <code>
/// "TokenMeter": { "Pricing": { "Models": [
///   { "Model": "gpt-4o", "Tier": "Standard", "EffectiveFrom": "2026-01-01",
///     "InputPerMillion": 2.0, "CachedInputPerMillion": 1.0, "CacheWritePerMillion": 2.5,
///     "OutputPerMillion": 8.0 } ] } }
/// </code>
/// </summary>
public sealed class PricingOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Pricing";

    /// <summary>Whether the built-in prices are included. Default true.</summary>
    public bool IncludeDefaults { get; set; } = true;

    /// <summary>Prices that extend or override the built-in ones.</summary>
    [ValidateEnumeratedItems]
    public IList<ModelPriceOptions> Models { get; } = [];
}

/// <summary>One configured price, in US dollars per million tokens.</summary>
public sealed class ModelPriceOptions
{
    /// <summary>Model family or exact model name, e.g. <c>gpt-4o</c> or <c>my-fine-tune</c>. Required.</summary>
    [Required]
    [MinLength(1)]
    public string Model { get; set; } = string.Empty;

    /// <summary>Processing tier (<c>Standard</c>, <c>Batch</c>, <c>Flex</c>, <c>Priority</c>). Default standard.</summary>
    public PriceTier Tier { get; set; }

    /// <summary>First UTC day the price applies to (<c>YYYY-MM-DD</c>). Default: since always.</summary>
    public DateOnly EffectiveFrom { get; set; }

    /// <summary>Price of a million uncached input tokens.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal InputPerMillion { get; set; }

    /// <summary>Price of a million cached input tokens; unset means the input price.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? CachedInputPerMillion { get; set; }

    /// <summary>Price of a million output tokens.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal OutputPerMillion { get; set; }

    /// <summary>Price of a million audio input tokens; unset means audio input is priced as text.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? AudioInputPerMillion { get; set; }

    /// <summary>Price of a million audio output tokens; unset means audio output is priced as text.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? AudioOutputPerMillion { get; set; }

    /// <summary>Price of a million input tokens written to the prompt cache; unset means 1.25 × the input price.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? CacheWritePerMillion { get; set; }

    /// <summary>Price of a million image input tokens (image models); unset means image input is priced as text.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? ImageInputPerMillion { get; set; }

    /// <summary>Price of a minute of audio, for transcription models that report a duration.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? PerMinute { get; set; }

    /// <summary>Price of a million characters of input text, for speech models billed by the character.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? PerMillionCharacters { get; set; }

    /// <summary>Price of one image by <c>quality/size</c> (e.g. <c>hd/1024x1792</c>) or by size alone, for image models billed per image.</summary>
    public IDictionary<string, decimal> PerImage { get; } = new Dictionary<string, decimal>(StringComparer.OrdinalIgnoreCase);

    /// <summary>When set, calls with more input tokens than this are priced at the <c>LongContext*</c> prices.</summary>
    [Range(0L, long.MaxValue)]
    public long? LongContextAboveInputTokens { get; set; }

    /// <summary>Input price above <see cref="LongContextAboveInputTokens"/>; unset means <see cref="InputPerMillion"/>.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? LongContextInputPerMillion { get; set; }

    /// <summary>Cached input price above <see cref="LongContextAboveInputTokens"/>; unset means the long-context input price.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? LongContextCachedInputPerMillion { get; set; }

    /// <summary>Output price above <see cref="LongContextAboveInputTokens"/>; unset means <see cref="OutputPerMillion"/>.</summary>
    [Range(typeof(decimal), "0", "1000000")]
    public decimal? LongContextOutputPerMillion { get; set; }

    internal ModelPrice ToModelPrice() =>
        new(Model.Trim(), Tier, EffectiveFrom, InputPerMillion, CachedInputPerMillion, OutputPerMillion)
        {
            AudioInputPerMillion = AudioInputPerMillion,
            AudioOutputPerMillion = AudioOutputPerMillion,
            CacheWritePerMillion = CacheWritePerMillion,
            ImageInputPerMillion = ImageInputPerMillion,
            PerMinute = PerMinute,
            PerMillionCharacters = PerMillionCharacters,
            PerImage = PerImage.Count == 0 ? null : PerImage.ToDictionary(p => p.Key.ToLowerInvariant(), p => p.Value, StringComparer.Ordinal),
            LongContext = LongContextAboveInputTokens is { } above
                ? new LongContextPrice(above, LongContextInputPerMillion ?? InputPerMillion, LongContextCachedInputPerMillion, LongContextOutputPerMillion ?? OutputPerMillion)
                : null,
        };
}

/// <summary>Start-up validation of <see cref="PricingOptions"/> (source-generated).</summary>
[OptionsValidator]
internal sealed partial class PricingOptionsValidator : IValidateOptions<PricingOptions>;
