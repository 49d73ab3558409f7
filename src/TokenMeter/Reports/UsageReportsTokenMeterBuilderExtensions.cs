using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.Delivery;
using TokenMeter.Reports;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds email usage reports to TokenMeter.</summary>
public static class UsageReportsTokenMeterBuilderExtensions
{
    /// <summary>
    /// Sends daily, weekly or monthly usage reports by email (<c>TokenMeter:Reports:Schedule</c>, to
    /// <c>TokenMeter:Reports:To</c>) once per period across instances, and on demand. Mail goes through the
    /// registered email sender, e.g. <c>.AddSmtpEmail()</c> from TokenMeter.Email. Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddUsageReports(this ITokenMeterBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        if (services.Any(d => d.ServiceType == typeof(UsageReportService)))
        {
            return builder;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.AddMailDelivery();
        services.AddOptions<UsageReportOptions>().BindConfiguration(UsageReportOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UsageReportOptions>, UsageReportOptionsValidator>());
        services.TryAddSingleton<UsageReportBuilder>();
        services.AddSingleton<UsageReportService>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<UsageReportService>());
        return builder;
    }
}
