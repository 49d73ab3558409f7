namespace TokenMeter.Pricing;

/// <summary>Prices a finished call. Implemented over the <c>PriceTable</c>.</summary>
internal interface IUsagePricer
{
    /// <summary>Returns the record with <see cref="UsageRecord.CostUsd"/> and <see cref="UsageRecord.PriceId"/> set, or left null when the model has no price.</summary>
    /// <param name="record">The unpriced record.</param>
    /// <returns>The priced record.</returns>
    UsageRecord Price(UsageRecord record);
}
