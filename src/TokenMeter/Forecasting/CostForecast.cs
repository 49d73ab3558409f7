namespace TokenMeter.Forecasting;

/// <summary>The platform's cost for a UTC calendar month, projected to the month's end.</summary>
/// <param name="Month">The first day of the month.</param>
/// <param name="AsOf">When the projection was made.</param>
/// <param name="MonthToDateCostUsd">Cost so far this month, today included.</param>
/// <param name="ProjectedMonthCostUsd">Projected cost of the whole month.</param>
/// <param name="ProjectedLowUsd">Lower bound of the 80% interval (never below month to date).</param>
/// <param name="ProjectedHighUsd">Upper bound of the 80% interval.</param>
/// <param name="Method">How the projection was made, in words (says so when history is short).</param>
/// <param name="HistoryDays">Complete days of history the projection used.</param>
public sealed record CostForecast(
    DateOnly Month,
    DateTimeOffset AsOf,
    decimal MonthToDateCostUsd,
    decimal ProjectedMonthCostUsd,
    decimal ProjectedLowUsd,
    decimal ProjectedHighUsd,
    string Method,
    int HistoryDays);
