using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Reports;

namespace TokenMeter.AspNetCore.Alerts;

/// <summary>Fails start-up with a message naming the key when alert settings cannot work.</summary>
internal sealed class TokenMeterAlertOptionsValidator(IOptionsMonitor<UsageReportOptions> reports) : IValidateOptions<TokenMeterAlertOptions>
{
    public ValidateOptionsResult Validate(string? name, TokenMeterAlertOptions options)
    {
        var failures = new List<string>();
        if (options.Email)
        {
            // The reports' own validator names a half-done SMTP section; this names what Email needs when none is set.
            var mail = reports.CurrentValue;
            if (string.IsNullOrWhiteSpace(mail.Smtp.Host) || mail.To.Count == 0 || string.IsNullOrWhiteSpace(mail.Smtp.From))
            {
                failures.Add(
                    "TokenMeter:Alerts:Email is true, but alerts cannot be mailed: configure TokenMeter:Reports:Smtp:Host, " +
                    "TokenMeter:Reports:Smtp:From and at least one TokenMeter:Reports:To recipient (or set TokenMeter:Alerts:Email to false).");
            }
        }

        if (options.WebhookUrl is { } url && (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add("TokenMeter:Alerts:WebhookUrl must be an absolute http or https URL.");
        }

        if (options.MaxAttempts < 1)
        {
            failures.Add("TokenMeter:Alerts:MaxAttempts must be at least 1.");
        }

        if (options.InitialRetryDelay < TimeSpan.Zero || options.ClaimLease <= TimeSpan.Zero)
        {
            failures.Add("TokenMeter:Alerts:InitialRetryDelay must not be negative and TokenMeter:Alerts:ClaimLease must be positive.");
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
