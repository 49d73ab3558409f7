namespace TokenMeter.Forecasting;

/// <summary>One user's cost this month, projected to the month's end, against the user's monthly budget.</summary>
/// <param name="UserId">The user.</param>
/// <param name="MonthToDateCostUsd">Cost so far this month.</param>
/// <param name="ProjectedMonthCostUsd">Projected cost of the whole month.</param>
/// <param name="MonthlyCostUsd">The user's effective monthly cost budget.</param>
/// <param name="ProjectedExhaustionDate">
/// The UTC day the user's spend reaches the budget: a past day when it already has, a projected day
/// otherwise; null when the projection stays below the budget this month.
/// </param>
public sealed record UserCostForecast(
    string UserId,
    decimal MonthToDateCostUsd,
    decimal ProjectedMonthCostUsd,
    decimal MonthlyCostUsd,
    DateOnly? ProjectedExhaustionDate);
