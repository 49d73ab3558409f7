using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.Billing;
using TokenMeter.Delivery;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds monthly statements to TokenMeter.</summary>
public static class StatementsTokenMeterBuilderExtensions
{
    /// <summary>
    /// Adds monthly statements (markup and currency from <c>TokenMeter:Billing</c>) and, once a month
    /// has closed, one <c>statement.closed</c> webhook per user (to <c>TokenMeter:Alerts:WebhookUrl</c>),
    /// sent once across instances on the feature's own timer. Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddStatements(this ITokenMeterBuilder builder, Action<BillingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddOptions<BillingOptions>().BindConfiguration(BillingOptions.SectionName).ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BillingOptions>, BillingOptionsValidator>());
        if (services.Any(d => d.ServiceType == typeof(StatementClosedNotifier)))
        {
            return builder;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.AddWebhookDelivery();
        services.AddSingleton<StatementClosedNotifier>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<StatementClosedNotifier>());
        return builder;
    }
}
