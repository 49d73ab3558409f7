namespace TokenMeter.Budgets;

/// <summary>Why a call was refused.</summary>
public enum BudgetRefusalReason
{
    /// <summary>Not refused.</summary>
    None = 0,

    /// <summary>The monthly cost limit is reached.</summary>
    CostLimit = 1,

    /// <summary>The monthly token limit is reached.</summary>
    TokenLimit = 2,

    /// <summary>Budgets or usage could not be read and the guard fails closed.</summary>
    Unavailable = 3,
}

/// <summary>A user's limits and spend this calendar month (UTC).</summary>
/// <param name="Limit">The limits that apply, or null for none.</param>
/// <param name="CostUsd">Spend this month: stored calls plus calls seen in-process and not yet stored.</param>
/// <param name="Tokens">Total tokens this month, counted the same way.</param>
/// <param name="ReservedCostUsd">Cost reserved by calls in flight in this process.</param>
/// <param name="ReservedTokens">Tokens reserved by calls in flight in this process.</param>
public sealed record BudgetStatus(BudgetLimit? Limit, decimal CostUsd, long Tokens, decimal ReservedCostUsd, long ReservedTokens)
{
    /// <summary>Cost left this month (never negative), or null without a cost limit.</summary>
    public decimal? RemainingCostUsd => Limit?.MonthlyCostUsd is { } max ? Math.Max(0m, max - CostUsd) : null;
}
