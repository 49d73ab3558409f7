namespace TokenMeter.Billing;

/// <summary>One line of a user's statement: usage of one endpoint and model in the month.</summary>
/// <param name="Endpoint">Endpoint label (null for calls outside any labelled scope).</param>
/// <param name="Model">Model.</param>
/// <param name="Figures">Calls, tokens and cost, priced with the price each record stored (unpriced calls count as zero).</param>
public sealed record StatementLine(string? Endpoint, string? Model, UsageFigures Figures);

/// <summary>One user's statement for a month.</summary>
/// <param name="UserId">The user.</param>
/// <param name="Lines">Line items by endpoint and model, costliest first.</param>
/// <param name="CostUsd">Sum of the lines' cost.</param>
/// <param name="AmountUsd">Amount charged: cost × (1 + markup / 100), rounded to cents half-to-even.</param>
public sealed record UserStatement(string UserId, IReadOnlyList<StatementLine> Lines, decimal CostUsd, decimal AmountUsd);

/// <summary>Every user's statement for a UTC calendar month (anonymous calls are billed to nobody and left out).</summary>
/// <param name="Month">The month's first day.</param>
/// <param name="Currency">Currency code of the amounts.</param>
/// <param name="MarkupPercent">Markup applied.</param>
/// <param name="Items">One statement per user with usage in the month, ordered by user id.</param>
/// <param name="TotalCostUsd">Sum of the users' cost.</param>
/// <param name="TotalAmountUsd">Sum of the users' (rounded) amounts.</param>
public sealed record MonthlyStatement(
    DateOnly Month,
    string Currency,
    decimal MarkupPercent,
    IReadOnlyList<UserStatement> Items,
    decimal TotalCostUsd,
    decimal TotalAmountUsd);
