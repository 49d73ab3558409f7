using TokenMeter.Pricing;

namespace TokenMeter.Repricing;

/// <summary>
/// Re-prices stored records against the current prices, as an explicit, audited operation: a dry
/// run first, then applied in one transaction that also corrects every rollup; each applied
/// re-pricing is stored and listed. A month whose statement is closed (the month ended more than
/// <see cref="ClosingGrace"/> ago) is the billed truth and never changes: its difference is reported.
/// </summary>
public sealed class UsageRepricer
{
    /// <summary>How long after a month ends its statement is closed (late records from the writer are in by then).</summary>
    public static readonly TimeSpan ClosingGrace = TimeSpan.FromMinutes(30);

    private static readonly DateOnly MinDay = new(2000, 1, 1);
    private static readonly DateOnly MaxDay = new(2199, 12, 31);

    private readonly IUsageRepricingStore _store;
    private readonly IPriceSource _prices;
    private readonly TimeProvider _timeProvider;

    /// <summary>Creates a re-pricer.</summary>
    /// <param name="store">Where the records are.</param>
    /// <param name="prices">The current prices.</param>
    /// <param name="timeProvider">The clock (which months are closed, when a re-pricing was applied).</param>
    public UsageRepricer(IUsageRepricingStore store, IPriceSource prices, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(prices);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _store = store;
        _prices = prices;
        _timeProvider = timeProvider;
    }

    /// <summary>The first day of the first month whose statement is still open at <paramref name="now"/>.</summary>
    /// <param name="now">The current time.</param>
    /// <returns>The month's first day.</returns>
    public static DateOnly FirstOpenMonth(DateTimeOffset now)
    {
        var day = DateOnly.FromDateTime((now - ClosingGrace).UtcDateTime);
        return new DateOnly(day.Year, day.Month, 1);
    }

    /// <summary>Re-prices a range of days (a dry run unless <see cref="RepricingRequest.DryRun"/> is false).</summary>
    /// <param name="request">What to re-price.</param>
    /// <param name="cancellationToken">Cancels it.</param>
    /// <returns>What changed, or would.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A day outside 2000-01-01..2199-12-31, or <c>From</c> after <c>To</c>.</exception>
    public ValueTask<RepricingResult> RepriceAsync(RepricingRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.From < MinDay || request.To > MaxDay || request.From > request.To)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "The days must lie in 2000-01-01..2199-12-31 with From on or before To.");
        }

        var now = _timeProvider.GetUtcNow();
        var plan = new RepricingPlan(request, Guid.CreateVersion7(now), now, FirstOpenMonth(now), record => RecordPricing.Price(_prices, record));
        return _store.RepriceAsync(plan, cancellationToken);
    }

    /// <summary>The applied re-pricings, newest first.</summary>
    /// <param name="limit">At most this many (1..1000).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The re-pricings.</returns>
    public ValueTask<IReadOnlyList<RepricingEntry>> GetRepricingsAsync(int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, 1000);
        return _store.GetRepricingsAsync(limit, cancellationToken);
    }
}
