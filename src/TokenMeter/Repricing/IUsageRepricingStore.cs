namespace TokenMeter.Repricing;

/// <summary>
/// A store's side of re-pricing. <see cref="RepriceAsync"/> reads the records of the range, prices
/// each with <see cref="RepricingPlan.Price"/>, and (unless a dry run) writes the changed costs,
/// price ids and cost sources together with the corrected rollups and the stored re-pricing, all at
/// once: a reader sees either none or all of it. Records before <see cref="RepricingPlan.FirstOpenMonth"/>
/// are never changed. Use <see cref="RepricingTally"/> to count.
/// </summary>
public interface IUsageRepricingStore
{
    /// <summary>Runs a re-pricing.</summary>
    /// <param name="plan">What to do.</param>
    /// <param name="cancellationToken">Cancels it (nothing is changed).</param>
    /// <returns>What changed, or would.</returns>
    ValueTask<RepricingResult> RepriceAsync(RepricingPlan plan, CancellationToken cancellationToken = default);

    /// <summary>The applied re-pricings, newest first.</summary>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The re-pricings.</returns>
    ValueTask<IReadOnlyList<RepricingEntry>> GetRepricingsAsync(int limit = 100, CancellationToken cancellationToken = default);
}
