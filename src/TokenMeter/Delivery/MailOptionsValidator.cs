using Microsoft.Extensions.Options;

namespace TokenMeter.Delivery;

/// <summary>Fails start-up with a message naming the key when a recipient is not an address.</summary>
internal sealed class MailOptionsValidator : IValidateOptions<MailOptions>
{
    public ValidateOptionsResult Validate(string? name, MailOptions options)
    {
        var failures = options.To.Where(to => !RecipientMailer.IsAddress(to))
            .Select(to => $"TokenMeter:Reports:To contains '{to}', which is not an email address.")
            .ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
