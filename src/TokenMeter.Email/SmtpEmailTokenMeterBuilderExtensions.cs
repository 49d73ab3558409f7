using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.Configuration;
using TokenMeter.Delivery;
using TokenMeter.Email;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds SMTP email (MailKit) to TokenMeter.</summary>
public static class SmtpEmailTokenMeterBuilderExtensions
{
    /// <summary>
    /// Sends TokenMeter's mail (usage reports, alert mails) over SMTP with MailKit. Options bind from
    /// <c>TokenMeter:Reports:Smtp</c>; with no <c>Host</c> mail stays off. Replaces any email sender
    /// registered before. Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddSmtpEmail(this ITokenMeterBuilder builder, Action<SmtpOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddValidatedOptions<SmtpOptions, SmtpOptionsValidator>(SmtpOptions.SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.Replace(ServiceDescriptor.Singleton<IEmailSender, SmtpEmailSender>());
        return builder;
    }
}
