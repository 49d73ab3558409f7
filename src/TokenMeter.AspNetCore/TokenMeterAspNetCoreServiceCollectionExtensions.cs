using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter;
using TokenMeter.AspNetCore;
using TokenMeter.AspNetCore.Endpoints;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers TokenMeter's ASP.NET Core services.</summary>
public static class TokenMeterAspNetCoreServiceCollectionExtensions
{
    /// <summary>
    /// Binds the admin API's options (<c>TokenMeter:AspNetCore</c>: admin role or policy, user-id claim)
    /// and makes the app's HTTP JSON (and so its OpenAPI document) write the read model as the admin API
    /// does. Switches no feature on: add each with its own call (<c>.AddBudgets()</c>, <c>.AddAlerts()</c>,
    /// <c>.AddUsageReports()</c>, <c>.AddStatements()</c>). Optional: without it the admin API uses the
    /// default options. Idempotent.
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

        // API documents list the query parameters the admin routes read by hand (any generator on the API Explorer).
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.AspNetCore.Mvc.ApiExplorer.IApiDescriptionProvider, AdminQueryApiDescriptionProvider>());
        return builder;
    }
}
