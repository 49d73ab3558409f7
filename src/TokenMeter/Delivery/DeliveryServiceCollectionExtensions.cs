using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter.Configuration;

namespace TokenMeter.Delivery;

/// <summary>Registers the delivery plumbing the features share: the webhook sender and the recipient mailer. Idempotent.</summary>
internal static class DeliveryServiceCollectionExtensions
{
    /// <summary>The webhook sender (options from <c>TokenMeter:Alerts</c>), run as a hosted service.</summary>
    public static IServiceCollection AddWebhookDelivery(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(WebhookSender)))
        {
            return services;
        }

        services.AddValidatedOptions<WebhookOptions, WebhookOptionsValidator>(WebhookOptions.SectionName);

        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.AddHttpClient(WebhookSender.HttpClientName, client => client.Timeout = TimeSpan.FromSeconds(10));
        services.AddSingleton<WebhookSender>();
        services.TryAddSingleton<IWebhookSender>(sp => sp.GetRequiredService<WebhookSender>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<WebhookSender>());
        return services;
    }

    /// <summary>The recipient mailer (recipients from <c>TokenMeter:Reports:To</c>); it sends through the app's <see cref="IEmailSender"/>.</summary>
    public static IServiceCollection AddMailDelivery(this IServiceCollection services)
    {
        // Bound once: binding a list twice would list every recipient twice.
        if (services.Any(d => d.ServiceType == typeof(RecipientMailer)))
        {
            return services;
        }

        services.AddValidatedOptions<MailOptions, MailOptionsValidator>(MailOptions.SectionName);
        services.AddSingleton<RecipientMailer>();
        return services;
    }
}
