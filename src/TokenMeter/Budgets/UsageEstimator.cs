using Microsoft.Extensions.Options;
using OpenAI.Chat;
using TokenMeter.Metering;
using TokenMeter.Pricing;

namespace TokenMeter.Budgets;

/// <summary>
/// The worst case of one call, reserved before it against budgets and tokens-per-minute limits:
/// the prompt's tokens counted with the o200k tokenizer (plus OpenAI's per-message framing) at the
/// model's uncached input price, plus the request's maximum output tokens at its output price, for
/// the model the request names. A model without a price reserves
/// <see cref="BudgetGuardOptions.DefaultReservationCostUsd"/>.
/// </summary>
/// <example>
/// <code>
/// var estimate = estimator.EstimateChat("gpt-4o-mini", messages, maxOutputTokens: 400);
/// using var reservation = await guard.ReserveAsync(userId, estimate);
/// </code>
/// </example>
public sealed class UsageEstimator
{
    /// <summary>Tokens counted for an image part: the most a high-detail image costs on the gpt-4o family (2048×768, 8 tiles).</summary>
    public const long ImageTokens = 1_445;

    private const int TokensPerMessage = 3;
    private const int ReplyPriming = 3;

    private readonly PriceTable _prices;
    private readonly TimeProvider _time;
    private readonly BudgetGuardOptions _options;

    /// <summary>Creates the estimator.</summary>
    /// <param name="prices">The price table calls are priced with.</param>
    /// <param name="time">The clock (prices have effective dates).</param>
    /// <param name="options">The fallback for models without a price.</param>
    public UsageEstimator(PriceTable prices, TimeProvider time, IOptions<BudgetGuardOptions> options)
    {
        ArgumentNullException.ThrowIfNull(prices);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        _prices = prices;
        _time = time;
        _options = options.Value;
    }

    /// <summary>The worst case of a call of <paramref name="model"/> with this many input tokens and at most <paramref name="maxOutputTokens"/> output tokens.</summary>
    /// <param name="model">The model the request names.</param>
    /// <param name="inputTokens">The prompt's tokens.</param>
    /// <param name="maxOutputTokens">The request's maximum output tokens.</param>
    /// <returns>The estimate.</returns>
    public BudgetEstimate Estimate(string model, long inputTokens, long maxOutputTokens)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentOutOfRangeException.ThrowIfNegative(inputTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(maxOutputTokens);
        var price = _prices.Find(model, PriceTier.Standard, _time.GetUtcNow());
        var cost = price is null
            ? _options.DefaultReservationCostUsd
            : ((inputTokens * price.InputPerMillion) + (maxOutputTokens * price.OutputPerMillion)) / 1_000_000m;
        return new BudgetEstimate(cost, inputTokens + maxOutputTokens);
    }

    /// <summary>The worst case of a chat completion: <see cref="CountTokens(IEnumerable{ChatMessage})"/> of the messages, and <paramref name="maxOutputTokens"/>.</summary>
    /// <param name="model">The model the request names.</param>
    /// <param name="messages">The messages sent.</param>
    /// <param name="maxOutputTokens">The request's <c>max_completion_tokens</c>.</param>
    /// <returns>The estimate.</returns>
    public BudgetEstimate EstimateChat(string model, IEnumerable<ChatMessage> messages, long maxOutputTokens) =>
        Estimate(model, CountTokens(messages), maxOutputTokens);

    /// <summary>The tokens of a text with the o200k tokenizer (e.g. a response format's JSON schema, which counts as input).</summary>
    /// <param name="text">The text.</param>
    /// <returns>The token count.</returns>
    public static long CountTokens(string text) => TokenEstimator.CountTokens(text ?? string.Empty);

    /// <summary>
    /// The prompt tokens of chat messages: each text part counted with the o200k tokenizer, each
    /// image part as <see cref="ImageTokens"/>, plus 3 tokens of framing per message and 3 for the
    /// reply's priming.
    /// </summary>
    /// <param name="messages">The messages.</param>
    /// <returns>The token count.</returns>
    public static long CountTokens(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        long tokens = ReplyPriming;
        foreach (var message in messages)
        {
            tokens += TokensPerMessage;
            foreach (var part in message.Content)
            {
                tokens += part.Kind == ChatMessageContentPartKind.Image ? ImageTokens : TokenEstimator.CountTokens(part.Text ?? string.Empty);
            }
        }

        return tokens;
    }
}
