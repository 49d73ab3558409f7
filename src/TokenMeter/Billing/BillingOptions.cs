namespace TokenMeter.Billing;

/// <summary>Options of usage statements, bound from <c>TokenMeter:Billing</c>.</summary>
public sealed class BillingOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Billing";

    /// <summary>
    /// Percent added to cost to get the amount charged (e.g. 20 charges 1.20 × cost). Default 0;
    /// from 0 to 10,000.
    /// </summary>
    public decimal MarkupPercent { get; set; }

    /// <summary>The statements' currency code. Costs are metered in US dollars; default <c>USD</c>.</summary>
    public string Currency { get; set; } = "USD";
}
