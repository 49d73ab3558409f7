using Microsoft.Extensions.Options;
using MimeKit;

namespace TokenMeter.AspNetCore.Reports;

/// <summary>Fails start-up with a message naming the key when report settings cannot work.</summary>
internal sealed class UsageReportOptionsValidator : IValidateOptions<UsageReportOptions>
{
    public ValidateOptionsResult Validate(string? name, UsageReportOptions options)
    {
        var failures = new List<string>();
        foreach (var period in options.Schedule)
        {
            if (!ReportPeriods.TryParse(period, out _))
            {
                failures.Add($"TokenMeter:Reports:Schedule contains '{period}'; use daily, weekly or monthly.");
            }
        }

        foreach (var to in options.To)
        {
            if (!MailboxAddress.TryParse(to, out _))
            {
                failures.Add($"TokenMeter:Reports:To contains '{to}', which is not an email address.");
            }
        }

        var wantsMail = options.Schedule.Count > 0 || options.To.Count > 0 || !string.IsNullOrWhiteSpace(options.Smtp.Host);
        if (wantsMail)
        {
            if (string.IsNullOrWhiteSpace(options.Smtp.Host))
            {
                failures.Add("TokenMeter:Reports:Smtp:Host is required to send reports.");
            }

            if (options.To.Count == 0)
            {
                failures.Add("TokenMeter:Reports:To needs at least one recipient to send reports.");
            }

            if (string.IsNullOrWhiteSpace(options.Smtp.From) || !MailboxAddress.TryParse(options.Smtp.From, out _))
            {
                failures.Add("TokenMeter:Reports:Smtp:From must be an email address to send reports.");
            }
        }

        if (options.Smtp.Port is < 1 or > 65535)
        {
            failures.Add("TokenMeter:Reports:Smtp:Port must be from 1 to 65535.");
        }

        if (options.CheckInterval <= TimeSpan.Zero || options.ClaimLease <= TimeSpan.Zero || options.MaxRetryDelay <= TimeSpan.Zero)
        {
            failures.Add("TokenMeter:Reports:CheckInterval, ClaimLease and MaxRetryDelay must be positive.");
        }

        if (options.SendAfterUtc < TimeSpan.Zero || options.SendAfterUtc >= TimeSpan.FromDays(1))
        {
            failures.Add("TokenMeter:Reports:SendAfterUtc must be a time of day.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
