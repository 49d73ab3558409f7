using Microsoft.Extensions.Options;
using TokenMeter.Delivery;

namespace TokenMeter.Alerts;

/// <summary>Fails start-up with a message naming the key when alert settings cannot work.</summary>
internal sealed class TokenMeterAlertOptionsValidator(RecipientMailer mailer) : IValidateOptions<TokenMeterAlertOptions>
{
    public ValidateOptionsResult Validate(string? name, TokenMeterAlertOptions options)
    {
        var failures = new List<string>();

        // The mail settings' own validators name a half-done section; this names what Email needs when none is set.
        if (options.Email && mailer.RecipientCount == 0)
        {
            failures.Add(
                "TokenMeter:Alerts:Email is true, but alerts cannot be mailed: add an email sender (.AddSmtpEmail() from TokenMeter.Email), " +
                "configure TokenMeter:Reports:Smtp:Host, TokenMeter:Reports:Smtp:From and at least one TokenMeter:Reports:To recipient " +
                "(or set TokenMeter:Alerts:Email to false).");
        }

        if (options.BudgetThresholdsPercent?.Any(p => p <= 0) == true)
        {
            failures.Add("TokenMeter:Alerts:BudgetThresholdsPercent must hold positive percentages.");
        }

        if (options.PlatformDailyCostUsd is <= 0)
        {
            failures.Add("TokenMeter:Alerts:PlatformDailyCostUsd must be positive when set.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
