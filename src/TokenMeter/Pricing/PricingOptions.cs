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
///     "InputPerMillion": 2.0, "CachedInputPerMillion": 1.0, "OutputPerMillion": 8.0 } ] } }
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

    internal ModelPrice ToModelPrice() =>
        new(Model.Trim(), Tier, EffectiveFrom, InputPerMillion, CachedInputPerMillion, OutputPerMillion)
        {
            AudioInputPerMillion = AudioInputPerMillion,
            AudioOutputPerMillion = AudioOutputPerMillion,
        };
}

/// <summary>Start-up validation of <see cref="PricingOptions"/> (source-generated).</summary>
[OptionsValidator]
internal sealed partial class PricingOptionsValidator : IValidateOptions<PricingOptions>;
