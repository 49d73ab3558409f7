namespace TokenMeter.Pricing;

/// <summary>OpenAI processing tiers, each with its own prices.</summary>
public enum PriceTier
{
    /// <summary>The default tier (<c>service_tier</c> <c>default</c> or absent).</summary>
    Standard = 0,

    /// <summary>The Batch API: half the standard price on most models.</summary>
    Batch = 1,

    /// <summary>Flex processing: slower, cheaper (<c>service_tier</c> <c>flex</c>).</summary>
    Flex = 2,

    /// <summary>Priority processing: faster, dearer (<c>service_tier</c> <c>priority</c>).</summary>
    Priority = 3,
}
