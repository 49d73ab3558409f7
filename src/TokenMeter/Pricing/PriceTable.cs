using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Text.RegularExpressions;

namespace TokenMeter.Pricing;

/// <summary>
/// Dated per-model prices and the rules that pick one for a call: the exact model name first,
/// else its family (a dated snapshot such as <c>gpt-4o-2024-08-06</c> resolves to <c>gpt-4o</c>);
/// the call's service tier (a model with no price on that tier has no price: the call is flagged
/// unpriced rather than priced at standard); and the price in effect on the UTC day the call
/// started. Immutable and thread-safe.
/// </summary>
public sealed partial class PriceTable : IPriceSource
{
    // Resolved lookups are kept per model string as the caller spelled it; a table sees few models,
    // and past this many (a reply can name anything) lookups are simply not cached.
    private const int MaxCachedModels = 4096;

    private readonly FrozenDictionary<string, Dated[]> _byModelAndTier;
    private readonly ConcurrentDictionary<(string Model, PriceTier Tier), Dated[][]> _resolved = new();

    /// <summary>Creates a table over the given prices; a later price with the same model, tier and date replaces an earlier one.</summary>
    /// <param name="prices">The prices.</param>
    public PriceTable(IEnumerable<ModelPrice> prices)
    {
        ArgumentNullException.ThrowIfNull(prices);

        var unique = new Dictionary<(string Model, PriceTier Tier, DateOnly From), ModelPrice>();
        foreach (var price in prices)
        {
            ArgumentNullException.ThrowIfNull(price);
            ArgumentException.ThrowIfNullOrWhiteSpace(price.Model);
            unique[(price.Model.ToLowerInvariant(), price.Tier, price.EffectiveFrom)] = price;
        }

        Prices = [.. unique.Values.OrderBy(p => p.Model, StringComparer.Ordinal).ThenBy(p => p.Tier).ThenBy(p => p.EffectiveFrom)];
        _byModelAndTier = unique.Values
            .GroupBy(p => Key(p.Model, p.Tier), StringComparer.Ordinal)
            .ToFrozenDictionary(g => g.Key, g => g.OrderBy(p => p.EffectiveFrom).Select(p => new Dated(p, p.Id)).ToArray(), StringComparer.Ordinal);
    }

    /// <summary>The built-in prices of current OpenAI models.</summary>
    public static PriceTable Default { get; } = new(DefaultPrices.All);

    /// <summary>Every price in the table, ordered by model, tier and date.</summary>
    public IReadOnlyList<ModelPrice> Prices { get; }

    /// <summary>Maps a reply's <c>service_tier</c> to a tier: <c>flex</c>, <c>priority</c> and <c>batch</c> map to theirs, anything else to standard (pricing uses <see cref="RecordPricing.TryParseTier"/>, which flags unknown tiers instead).</summary>
    /// <param name="serviceTier">The reported tier, e.g. <c>default</c>; may be null.</param>
    /// <returns>The tier.</returns>
    public static PriceTier ParseTier(string? serviceTier) => serviceTier?.Trim().ToLowerInvariant() switch
    {
        "flex" => PriceTier.Flex,
        "priority" => PriceTier.Priority,
        "batch" => PriceTier.Batch,
        _ => PriceTier.Standard,
    };

    /// <summary>Finds the price that applies to a model on a tier at a time, or null when the model has none.</summary>
    /// <param name="model">The model the reply reported.</param>
    /// <param name="tier">The tier.</param>
    /// <param name="at">When the call started.</param>
    /// <returns>The price, or null.</returns>
    public ModelPrice? Find(string? model, PriceTier tier, DateTimeOffset at) => Resolve(model, tier, at)?.Price;

    /// <inheritdoc />
    public ModelPrice? FindPrice(string model, PriceTier tier, DateTimeOffset at) => Resolve(model, tier, at)?.Price;

    /// <summary>Prices a record (see <see cref="RecordPricing.Price"/>): sets <see cref="UsageRecord.CostUsd"/>, <see cref="UsageRecord.PriceId"/> and <see cref="UsageRecord.CostSource"/>, or marks it unpriced when the model has no price on the tier the reply reported.</summary>
    /// <param name="record">The record; <see cref="UsageRecord.Model"/> (else <see cref="UsageRecord.RequestModel"/>), <see cref="UsageRecord.ServiceTier"/> and <see cref="UsageRecord.CreatedAt"/> pick the price.</param>
    /// <returns>The priced record.</returns>
    public UsageRecord Price(UsageRecord record) => RecordPricing.Price(this, record);

    /// <summary>Returns a table with these prices added; a price with the same model, tier and date replaces the existing one.</summary>
    /// <param name="prices">The prices to add.</param>
    /// <returns>The new table.</returns>
    public PriceTable With(IEnumerable<ModelPrice> prices)
    {
        ArgumentNullException.ThrowIfNull(prices);
        return new PriceTable(Prices.Concat(prices));
    }

    private Dated? Resolve(string? model, PriceTier tier, DateTimeOffset at)
    {
        if (string.IsNullOrWhiteSpace(model))
        {
            return null;
        }

        if (!_resolved.TryGetValue((model, tier), out var candidates))
        {
            candidates = [.. Candidates(model.Trim().ToLowerInvariant())
                .Select(name => Lookup(name, tier))
                .OfType<Dated[]>()];
            if (_resolved.Count < MaxCachedModels)
            {
                _resolved.TryAdd((model, tier), candidates);
            }
        }

        if (candidates.Length == 0)
        {
            return null;
        }

        // The exact name wins over the family; a call older than every known price gets the oldest one rather than none.
        var dated = candidates[0];
        return InEffect(dated, DateOnly.FromDateTime(at.UtcDateTime)) ?? dated[0];
    }

    private Dated[]? Lookup(string model, PriceTier tier) => _byModelAndTier.TryGetValue(Key(model, tier), out var dated) ? dated : null;

    private static Dated? InEffect(Dated[]? dated, DateOnly day)
    {
        if (dated is null)
        {
            return null;
        }

        // The latest price that took effect on or before the day.
        for (var i = dated.Length - 1; i >= 0; i--)
        {
            if (dated[i].Price.EffectiveFrom <= day)
            {
                return dated[i];
            }
        }

        return null;
    }

    private static IEnumerable<string> Candidates(string model)
    {
        yield return model;

        // Only a trailing date is stripped, so gpt-4o-mini never falls back to gpt-4o.
        var match = SnapshotSuffix().Match(model);
        if (match.Success)
        {
            yield return model[..match.Index];
        }
    }

    private static string Key(string model, PriceTier tier) => string.Concat(model.ToLowerInvariant(), "|", ModelPrice.TierName(tier));

    /// <summary>A price with its <see cref="ModelPrice.Id"/> formatted once.</summary>
    private sealed record Dated(ModelPrice Price, string Id);

    [GeneratedRegex(@"-(\d{4}-\d{2}-\d{2}|\d{4})$", RegexOptions.CultureInvariant)]
    private static partial Regex SnapshotSuffix();
}
