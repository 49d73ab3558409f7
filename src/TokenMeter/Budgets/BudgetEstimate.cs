namespace TokenMeter.Budgets;

/// <summary>
/// What a call is expected to use at most, reserved against the user's budget before the call and
/// released when it ends (the real cost then counts instead).
/// </summary>
/// <param name="CostUsd">Expected cost in US dollars (e.g. prompt tokens × input price + max output tokens × output price).</param>
/// <param name="Tokens">Expected total tokens (e.g. prompt tokens + max output tokens).</param>
public sealed record BudgetEstimate(decimal CostUsd, long Tokens);
