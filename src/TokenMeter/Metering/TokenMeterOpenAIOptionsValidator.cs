using Microsoft.Extensions.Options;

namespace TokenMeter.Metering;

/// <summary>Validates <see cref="TokenMeterOpenAIOptions"/> at start-up (source-generated, no reflection).</summary>
[OptionsValidator]
internal sealed partial class TokenMeterOpenAIOptionsValidator : IValidateOptions<TokenMeterOpenAIOptions>;

/// <summary>Runs the generated validator and names each failing field by its configuration key (<c>TokenMeter:OpenAI:MaxRetries</c>).</summary>
internal sealed class TokenMeterOpenAIOptionsKeyedValidator : IValidateOptions<TokenMeterOpenAIOptions>
{
    private readonly TokenMeterOpenAIOptionsValidator _inner = new();

    public ValidateOptionsResult Validate(string? name, TokenMeterOpenAIOptions options)
    {
        var result = _inner.Validate(name, options);
        if (!result.Failed)
        {
            return result;
        }

        var prefix = TokenMeterOpenAIOptions.SectionName + ":";
        return ValidateOptionsResult.Fail(result.Failures!.Select(f => f.Replace(nameof(TokenMeterOpenAIOptions) + ".", prefix, StringComparison.Ordinal)));
    }
}
