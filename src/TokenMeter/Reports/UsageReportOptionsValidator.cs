using Microsoft.Extensions.Options;
using TokenMeter.Delivery;

namespace TokenMeter.Reports;

/// <summary>Fails start-up with a message naming the key when report settings cannot work.</summary>
internal sealed class UsageReportOptionsValidator(RecipientMailer mailer, IOptionsMonitor<MailOptions> mail) : IValidateOptions<UsageReportOptions>
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

        var recipients = mail.CurrentValue.To.Count;
        if (options.Schedule.Count > 0 || recipients > 0)
        {
            if (!mailer.HasSender)
            {
                failures.Add(
                    "TokenMeter:Reports:Smtp:Host is required to send reports (with .AddSmtpEmail() from TokenMeter.Email; " +
                    "or register another TokenMeter.Delivery.IEmailSender).");
            }

            if (recipients == 0)
            {
                failures.Add("TokenMeter:Reports:To needs at least one recipient to send reports.");
            }
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
