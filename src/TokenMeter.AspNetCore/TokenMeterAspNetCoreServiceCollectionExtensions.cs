using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Alerts;
using TokenMeter.AspNetCore.Endpoints;
using TokenMeter.AspNetCore.Reports;
using TokenMeter.Budgets;
using TokenMeter.Metering;

namespace TokenMeter.AspNetCore;

/// <summary>Registers TokenMeter's ASP.NET Core services.</summary>
public static class TokenMeterAspNetCoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds what the admin endpoints and filters use: options (<c>TokenMeter:AspNetCore</c>), the
    /// budget guard (<c>TokenMeter:Budgets</c>), alerts and the webhook sender (<c>TokenMeter:Alerts</c>).
    /// Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder from <c>AddTokenMeter()</c>.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddTokenMeterAspNetCore(this ITokenMeterBuilder builder, Action<TokenMeterAspNetCoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddOptions<TokenMeterAspNetCoreOptions>().BindConfiguration(TokenMeterAspNetCoreOptions.SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        // The app's JSON (OpenAPI documents it) writes the read model as the admin API does.
        services.ConfigureHttpJsonOptions(json => AdminJson.AddTo(json.SerializerOptions));
        builder.AddBudgetGuard();
        services.AddTokenMeterReports();
        services.AddOptions<TokenMeterAlertOptions>().BindConfiguration(TokenMeterAlertOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TokenMeterAlertOptions>, TokenMeterAlertOptionsValidator>());
        if (services.Any(d => d.ServiceType == typeof(WebhookSender)))
        {
            return builder;
        }

        services.AddMetrics();
        services.AddHttpClient(WebhookSender.HttpClientName, client => client.Timeout = TimeSpan.FromSeconds(10));
        services.AddSingleton<WebhookSender>();
        services.TryAddSingleton<IWebhookSender>(sp => sp.GetRequiredService<WebhookSender>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<WebhookSender>());
        services.AddSingleton<AlertMailer>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<AlertMailer>());
        services.AddSingleton<AlertMonitor>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<AlertMonitor>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageObserver, AlertUsageObserver>());
        return builder;
    }
}
