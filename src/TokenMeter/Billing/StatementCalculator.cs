using TokenMeter.Querying;

namespace TokenMeter.Billing;

/// <summary>Builds monthly usage statements from the store's per-user, per-endpoint usage.</summary>
public sealed class StatementCalculator
{
    private readonly IUsageQueries _queries;

    /// <summary>Creates a calculator.</summary>
    /// <param name="queries">Where usage is read.</param>
    public StatementCalculator(IUsageQueries queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        _queries = queries;
    }

    /// <summary>The statements of a month.</summary>
    /// <param name="month">Any day of the month (UTC).</param>
    /// <param name="markupPercent">Percent added to cost (0 or more).</param>
    /// <param name="currency">Currency code of the amounts.</param>
    /// <param name="userId">Only this user's statement; null for every user.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The statements.</returns>
    public async ValueTask<MonthlyStatement> GetMonthlyStatementAsync(
        DateOnly month,
        decimal markupPercent,
        string currency = "USD",
        string? userId = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(markupPercent);
        ArgumentException.ThrowIfNullOrWhiteSpace(currency);
        var first = new DateOnly(month.Year, month.Month, 1);
        var last = first.AddMonths(1).AddDays(-1);
        var rows = await _queries.GetUserEndpointUsageAsync(first, last, userId, cancellationToken).ConfigureAwait(false);
        return Build(first, rows, markupPercent, currency);
    }

    /// <summary>Groups usage rows into statements.</summary>
    /// <param name="month">The month's first day.</param>
    /// <param name="rows">Usage by user, endpoint and model.</param>
    /// <param name="markupPercent">Percent added to cost.</param>
    /// <param name="currency">Currency code.</param>
    /// <returns>The statements.</returns>
    public static MonthlyStatement Build(DateOnly month, IEnumerable<UserEndpointUsage> rows, decimal markupPercent, string currency = "USD")
    {
        ArgumentNullException.ThrowIfNull(rows);
        var items = new List<UserStatement>();
        decimal totalCost = 0m, totalAmount = 0m;
        foreach (var (userId, lines) in Users(rows))
        {
            var cost = 0m;
            foreach (var line in lines)
            {
                cost += line.Figures.CostUsd;
            }

            var amount = ApplyMarkup(cost, markupPercent);
            items.Add(new UserStatement(userId, lines, cost, amount));
            totalCost += cost;
            totalAmount += amount;
        }

        return new MonthlyStatement(month, currency, markupPercent, items, totalCost, totalAmount);
    }

    /// <summary>
    /// Each user's lines (users in id order, ordinal). Rows already in statement order (the PostgreSQL store's: each user's
    /// rows one run, users in id order, each user's costliest first) are taken run by run as they are; any other order is
    /// grouped by user and each user's lines sorted. Either way the lines are the same.
    /// </summary>
    private static IEnumerable<(string UserId, List<StatementLine> Lines)> Users(IEnumerable<UserEndpointUsage> rows)
    {
        if (rows is IReadOnlyList<UserEndpointUsage> list && InStatementOrder(list))
        {
            for (int start = 0, end; start < list.Count; start = end)
            {
                var lines = new List<StatementLine>();
                for (end = start; end < list.Count && string.Equals(list[end].UserId, list[start].UserId, StringComparison.Ordinal); end++)
                {
                    lines.Add(new StatementLine(list[end].Endpoint, list[end].Model, list[end].Figures));
                }

                yield return (list[start].UserId, lines);
            }

            yield break;
        }

        foreach (var user in rows.GroupBy(r => r.UserId, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            yield return (user.Key, Lines(user));
        }
    }

    /// <summary>Whether every row follows the one before it in statement order (user id, then <see cref="Lines"/>' order).</summary>
    private static bool InStatementOrder(IReadOnlyList<UserEndpointUsage> rows)
    {
        for (var i = 1; i < rows.Count; i++)
        {
            var (a, b) = (rows[i - 1], rows[i]);
            var byUser = string.CompareOrdinal(a.UserId, b.UserId);
            if (byUser > 0 || (byUser == 0 && Compare(a.Figures.CostUsd, a.Endpoint, a.Model, b.Figures.CostUsd, b.Endpoint, b.Model) > 0))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A user's lines, costliest first, then by endpoint and model (ordinal, null first); rows that tie keep their order.
    /// One array sort per user (a month's statements build a thousand users' at a time), where a three-key LINQ
    /// ordering allocated its key arrays and comparers per user.
    /// </summary>
    private static List<StatementLine> Lines(IEnumerable<UserEndpointUsage> rows)
    {
        var keyed = rows.Select((r, at) => (Line: new StatementLine(r.Endpoint, r.Model, r.Figures), At: at)).ToArray();
        Array.Sort(keyed, static (a, b) =>
        {
            var order = Compare(a.Line.Figures.CostUsd, a.Line.Endpoint, a.Line.Model, b.Line.Figures.CostUsd, b.Line.Endpoint, b.Line.Model);
            return order != 0 ? order : a.At.CompareTo(b.At);
        });
        var lines = new List<StatementLine>(keyed.Length);
        foreach (var (line, _) in keyed)
        {
            lines.Add(line);
        }

        return lines;
    }

    /// <summary>Costliest first, then by endpoint and model (ordinal, null first).</summary>
    private static int Compare(decimal costA, string? endpointA, string? modelA, decimal costB, string? endpointB, string? modelB)
    {
        var order = costB.CompareTo(costA);
        if (order == 0)
        {
            order = string.CompareOrdinal(endpointA, endpointB);
        }

        return order != 0 ? order : string.CompareOrdinal(modelA, modelB);
    }

    /// <summary>cost × (1 + markup / 100), rounded to cents half-to-even.</summary>
    /// <param name="costUsd">The cost.</param>
    /// <param name="markupPercent">Percent added.</param>
    /// <returns>The amount to charge.</returns>
    public static decimal ApplyMarkup(decimal costUsd, decimal markupPercent)
        => Math.Round(costUsd * (1m + (markupPercent / 100m)), 2, MidpointRounding.ToEven);
}
