using Microsoft.Extensions.Options;

namespace TokenMeter.Metering;

/// <summary>Validates <see cref="TokenMeterOpenAIOptions"/> at start-up (source-generated, no reflection).</summary>
[OptionsValidator]
internal sealed partial class TokenMeterOpenAIOptionsValidator : IValidateOptions<TokenMeterOpenAIOptions>;
