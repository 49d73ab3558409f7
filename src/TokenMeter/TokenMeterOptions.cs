namespace TokenMeter;

/// <summary>Options of TokenMeter's metering, bound from the <c>TokenMeter</c> configuration section.</summary>
public sealed class TokenMeterOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter";

    /// <summary>When false, calls pass through unmetered. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Whether to emit the OpenTelemetry histogram <c>gen_ai.client.token.usage</c> (and
    /// <c>gen_ai.client.operation.duration</c>). Turn it off when Microsoft.Extensions.AI's
    /// <c>UseOpenTelemetry()</c> already emits them. Default true.
    /// </summary>
    public bool EmitTokenUsageHistogram { get; set; } = true;

    /// <summary>
    /// When a reply carries no usage (a stream cut or abandoned before its usage event), estimate
    /// the input tokens locally with the o200k tokenizer and flag the record. Default true.
    /// </summary>
    public bool EstimateMissingUsage { get; set; } = true;

    /// <summary>
    /// Add <c>"stream_options":{"include_usage":true}</c> to streamed chat requests that do not
    /// set <c>stream_options</c> (protocol-method callers), so that the stream reports its usage.
    /// Default true.
    /// </summary>
    public bool IncludeStreamUsage { get; set; } = true;
}
