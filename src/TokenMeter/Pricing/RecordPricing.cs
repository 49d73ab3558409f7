namespace TokenMeter.Pricing;

/// <summary>
/// Prices records from any <see cref="IPriceSource"/>: picks the tier the reply reported, sets
/// the cost, the id of the price and the cost source, or marks the record unpriced.
/// </summary>
public static class RecordPricing
{
    // Each price's id, formatted once (a price table holds a few hundred; every priced record stores one).
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ModelPrice, string> Ids = [];

    /// <summary>Maps a reply's <c>service_tier</c> to a tier: absent, <c>default</c>, <c>auto</c> and <c>standard</c> are standard; <c>flex</c>, <c>priority</c> and <c>batch</c> map to theirs; anything else has no tier.</summary>
    /// <param name="serviceTier">The reported tier.</param>
    /// <param name="tier">The tier.</param>
    /// <returns>False for a tier TokenMeter has no prices for (e.g. <c>scale</c>).</returns>
    public static bool TryParseTier(string? serviceTier, out PriceTier tier)
    {
        tier = PriceTier.Standard;
        if (string.IsNullOrWhiteSpace(serviceTier))
        {
            return true;
        }

        switch (serviceTier.Trim().ToLowerInvariant())
        {
            case "default" or "auto" or "standard":
                return true;
            case "flex":
                tier = PriceTier.Flex;
                return true;
            case "priority":
                tier = PriceTier.Priority;
                return true;
            case "batch":
                tier = PriceTier.Batch;
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Prices a record: sets <see cref="UsageRecord.CostUsd"/>, <see cref="UsageRecord.PriceId"/>
    /// and <see cref="UsageRecord.CostSource"/>. With no price for the model on the tier the reply
    /// reported (or for the call's size or quality), the cost and price id are null and the source is
    /// <see cref="CostSource.Unpriced"/>: never a silent standard price, never a zero.
    /// </summary>
    /// <param name="source">The prices.</param>
    /// <param name="record">The record; <see cref="UsageRecord.Model"/> (else <see cref="UsageRecord.RequestModel"/>), <see cref="UsageRecord.ServiceTier"/> and <see cref="UsageRecord.CreatedAt"/> pick the price.</param>
    /// <returns>The priced record.</returns>
    public static UsageRecord Price(IPriceSource source, UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(record);
        var model = record.Model ?? record.RequestModel;
        if (string.IsNullOrWhiteSpace(model) || !TryParseTier(record.ServiceTier, out var tier))
        {
            return Unpriced(record);
        }

        var price = source.FindPrice(model, tier, record.CreatedAt);
        if (price is null || !price.TryCalculateCost(record, out var cost, out var byUnits))
        {
            return Unpriced(record);
        }

        return record with
        {
            CostUsd = cost,
            PriceId = Ids.GetValue(price, static p => p.Id),
            CostSource = !byUnits && BillingTags.IsEstimated(record) ? CostSource.Estimated : CostSource.Reported,
        };
    }

    private static UsageRecord Unpriced(UsageRecord record) => record with { CostUsd = null, PriceId = null, CostSource = CostSource.Unpriced };
}
