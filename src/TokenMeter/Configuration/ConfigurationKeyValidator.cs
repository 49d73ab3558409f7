using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace TokenMeter.Configuration;

/// <summary>
/// The one validation style of every TokenMeter options type: its rules are DataAnnotations checked
/// by a source-generated <c>[OptionsValidator]</c> (no reflection), and this wrapper rewrites each
/// member path of a failure into the configuration key it binds from, so the start-up error names
/// what to fix: <c>PricingOptions.Models[0].InputPerMillion</c> becomes
/// <c>TokenMeter:Pricing:Models:0:InputPerMillion</c>. Messages written with <c>{0}</c> get the key too.
/// </summary>
/// <typeparam name="TOptions">The options type.</typeparam>
internal sealed class ConfigurationKeyValidator<TOptions> : IValidateOptions<TOptions>
    where TOptions : class
{
    private readonly IValidateOptions<TOptions> _generated;
    private readonly string _sectionName;
    private readonly Regex _memberPath;

    /// <summary>Wraps <paramref name="generated"/> for options bound from <paramref name="sectionName"/>.</summary>
    public ConfigurationKeyValidator(IValidateOptions<TOptions> generated, string sectionName)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentException.ThrowIfNullOrEmpty(sectionName);
        _generated = generated;
        _sectionName = sectionName;

        // The type name followed by at least one ".Member" or "[index]".
        _memberPath = new Regex(@"\b" + Regex.Escape(typeof(TOptions).Name) + @"((?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])+)", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }

    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, TOptions options)
    {
        var result = _generated.Validate(name, options);
        return result.Failed
            ? ValidateOptionsResult.Fail(result.Failures!.Select(ToKeys))
            : result;
    }

    /// <summary>Rewrites every member path in <paramref name="failure"/> into its configuration key.</summary>
    internal string ToKeys(string failure) => _memberPath.Replace(failure, m => _sectionName + ToKeyPath(m.Groups[1].Value));

    private static string ToKeyPath(string path) => path.Replace('.', ':').Replace("[", ":", StringComparison.Ordinal).Replace("]", string.Empty, StringComparison.Ordinal);
}
