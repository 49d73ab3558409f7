using Microsoft.Extensions.Options;

namespace TokenMeter.Delivery;

/// <summary>Fails start-up with a message naming the key when the webhook settings cannot work.</summary>
internal sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions options)
    {
        var failures = new List<string>();
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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
