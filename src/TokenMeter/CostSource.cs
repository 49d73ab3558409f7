namespace TokenMeter;

/// <summary>Where a record's cost comes from.</summary>
public enum CostSource
{
    /// <summary>Usage the provider reported (or the exact billable units of the request), priced by the price table.</summary>
    Reported = 0,

    /// <summary>Token counts estimated locally with the model's tokenizer (the reply reported no usage), priced by the price table.</summary>
    Estimated = 1,

    /// <summary>No price applies (unknown model, or a tier the table has no price for): the cost is null until re-priced.</summary>
    Unpriced = 2,
}
