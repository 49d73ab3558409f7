namespace TokenMeter.Pricing;

/// <summary>
/// Where prices come from. The default is the <see cref="PriceTable"/> of built-in prices extended
/// by <c>TokenMeter:Pricing:Models</c>; register your own implementation (e.g. negotiated prices
/// loaded from a database and refreshed in the background) to replace it:
/// <c>services.AddSingleton&lt;IPriceSource, MyPrices&gt;()</c> after <c>AddTokenMeter()</c>.
/// Called on every metered call: answer from memory, never block.
/// </summary>
public interface IPriceSource
{
    /// <summary>
    /// The price of a model on a tier for a call that started at a time, or null when there is
    /// none (the call is then recorded unpriced, with a null cost, and can be re-priced later).
    /// Do not fall back to another tier: a call served on a tier without a price is flagged unpriced.
    /// </summary>
    /// <param name="model">The model the reply reported, e.g. <c>gpt-4o-2024-08-06</c>.</param>
    /// <param name="tier">The tier the reply reported.</param>
    /// <param name="at">When the call started.</param>
    /// <returns>The price, or null.</returns>
    ModelPrice? FindPrice(string model, PriceTier tier, DateTimeOffset at);
}
