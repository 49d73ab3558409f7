using Microsoft.Extensions.Options;
using TokenMeter.Billing;

namespace TokenMeter.Billing;

/// <summary>Fails start-up with a message naming the key when the billing options are out of range.</summary>
internal sealed class BillingOptionsValidator : IValidateOptions<BillingOptions>
{
    public ValidateOptionsResult Validate(string? name, BillingOptions options)
    {
        if (options.MarkupPercent is < 0m or > 10_000m)
        {
            return ValidateOptionsResult.Fail("TokenMeter:Billing:MarkupPercent must be from 0 to 10000.");
        }

        return string.IsNullOrWhiteSpace(options.Currency) || options.Currency.Length != 3
            ? ValidateOptionsResult.Fail("TokenMeter:Billing:Currency must be a three-letter currency code.")
            : ValidateOptionsResult.Success;
    }
}
