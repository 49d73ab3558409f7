using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace TokenMeter.Configuration;

/// <summary>How every TokenMeter package registers its options (one style in every package).</summary>
internal static class ValidatedOptionsServiceCollectionExtensions
{
    /// <summary>
    /// Binds <typeparamref name="TOptions"/> from <paramref name="sectionName"/>, validates it with the
    /// source-generated <typeparamref name="TValidator"/> when the host starts, and names each failing
    /// member by its configuration key (<see cref="ConfigurationKeyValidator{TOptions}"/>). Calling it
    /// again adds no second validator.
    /// </summary>
    public static OptionsBuilder<TOptions> AddValidatedOptions<TOptions, TValidator>(this IServiceCollection services, string sectionName)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>, new()
    {
        var builder = services.AddOptions<TOptions>().BindConfiguration(sectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, ConfigurationKeyValidator<TOptions>>(
            _ => new ConfigurationKeyValidator<TOptions>(new TValidator(), sectionName)));
        return builder;
    }
}
