namespace TokenMeter.AspNetCore.Budgets;

/// <summary>The problem details <c>type</c> URIs of budget refusals.</summary>
public static class BudgetProblemTypes
{
    /// <summary>429: the user's monthly budget is reached.</summary>
    public const string Exceeded = "https://tokenmeter.dev/problems/budget-exceeded";

    /// <summary>503: budgets could not be read and the guard fails closed.</summary>
    public const string Unavailable = "https://tokenmeter.dev/problems/budget-unavailable";
}
