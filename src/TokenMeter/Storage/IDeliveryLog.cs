namespace TokenMeter.Storage;

/// <summary>
/// Remembers which one-off deliveries (reports, alerts, statements) have been made, so that each
/// is sent once even with several app instances and across restarts.
/// </summary>
public interface IDeliveryLog
{
    /// <summary>
    /// Claims the right to deliver <paramref name="key"/> of <paramref name="kind"/>. Returns true to
    /// exactly one caller while the delivery is neither completed nor its claim expired.
    /// </summary>
    /// <param name="kind">The kind of delivery, e.g. <c>report.daily</c>.</param>
    /// <param name="key">What is delivered, e.g. <c>2026-11-24</c> or <c>42/2026-10</c>.</param>
    /// <param name="lease">How long the claim holds if it is never completed (a crashed sender).</param>
    /// <param name="cancellationToken">Cancels the claim.</param>
    /// <returns>True when the caller should deliver.</returns>
    ValueTask<bool> TryClaimAsync(string kind, string key, TimeSpan lease, CancellationToken cancellationToken = default);

    /// <summary>Marks a claimed delivery as done; it will never be claimed again.</summary>
    /// <param name="kind">The kind of delivery.</param>
    /// <param name="key">What was delivered.</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <returns>A task that completes when the mark is stored.</returns>
    ValueTask CompleteAsync(string kind, string key, CancellationToken cancellationToken = default);
}
