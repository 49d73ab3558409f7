using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.Billing;
using TokenMeter.Configuration;
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
        var first = !services.Any(d => d.ServiceType == typeof(StatementClosedNotifier));
        var options = first
            ? services.AddValidatedOptions<BillingOptions, BillingOptionsValidator>(BillingOptions.SectionName)
            : services.AddOptions<BillingOptions>();

        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (!first)
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
