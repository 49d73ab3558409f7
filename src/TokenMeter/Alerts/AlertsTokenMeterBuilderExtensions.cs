using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.Alerts;
using TokenMeter.Delivery;
using TokenMeter.Metering;
using TokenMeter.Writing;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds budget and platform alerts to TokenMeter.</summary>
public static class AlertsTokenMeterBuilderExtensions
{
    /// <summary>
    /// Watches finished calls and fires <c>budget.threshold</c> (with <c>AddBudgets()</c>) and
    /// <c>platform.daily_cost</c> once per period, as signed webhooks and, with
    /// <c>TokenMeter:Alerts:Email</c>, as mail through the registered email sender. Options bind from
    /// <c>TokenMeter:Alerts</c>. Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddAlerts(this ITokenMeterBuilder builder, Action<TokenMeterAlertOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        // Bound once (a list bound twice doubles); configure runs after the configuration on every call.
        var first = !services.Any(d => d.ServiceType == typeof(AlertMonitor));
        var options = services.AddOptions<TokenMeterAlertOptions>();
        if (first)
        {
            options.BindConfiguration(TokenMeterAlertOptions.SectionName).ValidateOnStart();
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (!first)
        {
            return builder;
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TokenMeterAlertOptions>, TokenMeterAlertOptionsValidator>());
        services.AddWebhookDelivery();
        services.AddMailDelivery();
        services.AddSingleton<AlertMailer>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<AlertMailer>());
        services.AddSingleton<AlertMonitor>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<AlertMonitor>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageObserver, AlertUsageObserver>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageStoredObserver, AlertStoredObserver>());
        return builder;
    }
}
