using Microsoft.Extensions.Options;
using MimeKit;

namespace TokenMeter.Email;

/// <summary>Fails start-up with a message naming the key when the SMTP settings cannot work.</summary>
internal sealed class SmtpOptionsValidator : IValidateOptions<SmtpOptions>
{
    public ValidateOptionsResult Validate(string? name, SmtpOptions options)
    {
        var failures = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.Host) && (string.IsNullOrWhiteSpace(options.From) || !MailboxAddress.TryParse(options.From, out _)))
        {
            failures.Add("TokenMeter:Reports:Smtp:From must be an email address to send reports.");
        }

        if (options.Port is < 1 or > 65535)
        {
            failures.Add("TokenMeter:Reports:Smtp:Port must be from 1 to 65535.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
