using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Billing;
using TokenMeter.Billing;

namespace TokenMeter.AspNetCore.Reports;

/// <summary>Registers forecasts, statements, email reports and statement webhooks (issue "extras").</summary>
internal static class ReportsServiceCollectionExtensions
{
    public static IServiceCollection AddTokenMeterReports(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(UsageReportService)))
        {
            return services;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<BillingOptions>().BindConfiguration(BillingOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BillingOptions>, BillingOptionsValidator>());

        services.AddOptions<UsageReportOptions>().BindConfiguration(UsageReportOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UsageReportOptions>, UsageReportOptionsValidator>());
        services.TryAddSingleton<IReportMailer, SmtpReportMailer>();
        services.TryAddSingleton<UsageReportBuilder>();
        services.AddSingleton<UsageReportService>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<UsageReportService>());
        return services;
    }
}
