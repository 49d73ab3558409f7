using Microsoft.Extensions.DependencyInjection;
using TokenMeter.AspNetCore.Endpoints;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore;

/// <summary>Registers TokenMeter's ASP.NET Core services.</summary>
public static class TokenMeterAspNetCoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds what the admin endpoints and filters use: options (<c>TokenMeter:AspNetCore</c>), the
    /// budget guard (<c>TokenMeter:Budgets</c>), alerts (<c>TokenMeter:Alerts</c>), usage reports and statements.
    /// Mail needs an email sender, e.g. <c>.AddSmtpEmail()</c> from TokenMeter.Email.
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
        builder.AddBudgets();
        builder.AddAlerts();
        builder.AddUsageReports();
        builder.AddStatements();
        return builder;
    }
}
