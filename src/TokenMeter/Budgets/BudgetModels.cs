namespace TokenMeter.Budgets;

/// <summary>Monthly limits; a null limit is no limit.</summary>
/// <param name="MonthlyCostUsd">Spend per calendar month (UTC) in US dollars.</param>
/// <param name="MonthlyTokens">Total tokens per calendar month (UTC).</param>
public sealed record BudgetLimit(decimal? MonthlyCostUsd, long? MonthlyTokens)
{
    /// <summary>Whether any limit is set.</summary>
    public bool HasLimit => MonthlyCostUsd is not null || MonthlyTokens is not null;
}

/// <summary>A user's own limits, overriding the default (a null limit here lifts the default's).</summary>
/// <param name="UserId">The user.</param>
/// <param name="MonthlyCostUsd">Spend per calendar month in US dollars.</param>
/// <param name="MonthlyTokens">Total tokens per calendar month.</param>
public sealed record UserBudget(string UserId, decimal? MonthlyCostUsd, long? MonthlyTokens)
{
    /// <summary>The limits alone.</summary>
    public BudgetLimit Limit => new(MonthlyCostUsd, MonthlyTokens);
}

/// <summary>All budgets: the default and the per-user overrides (ordered by user id).</summary>
/// <param name="Default">The default limits, or null for none.</param>
/// <param name="Users">Per-user overrides.</param>
public sealed record BudgetSettings(BudgetLimit? Default, IReadOnlyList<UserBudget> Users);
