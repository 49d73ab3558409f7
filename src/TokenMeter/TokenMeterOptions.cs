namespace TokenMeter;

/// <summary>Options of TokenMeter's metering, bound from the <c>TokenMeter</c> configuration section.</summary>
public sealed class TokenMeterOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter";

    /// <summary>When false, calls pass through unmetered. Default true.</summary>
    public bool Enabled { get; set; } = true;
}
