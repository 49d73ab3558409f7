using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Reports;

/// <summary>Gathers a report's figures through the store's query interface.</summary>
internal sealed class UsageReportBuilder(IServiceProvider services, IUsageQueries queries, TimeProvider timeProvider)
{
    public const int TopCount = 10;
    public const decimal BudgetWarningPercent = 80m;

    public async ValueTask<UsageReport> BuildAsync(ReportPeriod period, ReportRange range, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var previousRange = ReportPeriods.Previous(period, range);
        var current = await TotalsAsync(range, cancellationToken).ConfigureAwait(false);
        var previous = await TotalsAsync(previousRange, cancellationToken).ConfigureAwait(false);

        var rows = await queries.GetUserEndpointUsageAsync(range.From, range.To, null, cancellationToken).ConfigureAwait(false);
        var topUsers = rows
            .GroupBy(r => r.UserId, StringComparer.Ordinal)
            .Select(g => (UserId: g.Key, Calls: g.Sum(r => r.Figures.Calls), Tokens: g.Sum(r => r.Figures.TotalTokens), Cost: g.Sum(r => r.Figures.CostUsd)))
            .OrderByDescending(u => u.Cost)
            .ThenBy(u => u.UserId, StringComparer.Ordinal)
            .Take(TopCount)
            .ToList();
        var topEndpoints = rows
            .GroupBy(r => r.Endpoint, StringComparer.Ordinal)
            .Select(g => new ReportEndpointRow(g.Key, g.Sum(r => r.Figures.Calls), g.Sum(r => r.Figures.TotalTokens), g.Sum(r => r.Figures.CostUsd)))
            .OrderByDescending(e => e.CostUsd)
            .ThenBy(e => e.Endpoint, StringComparer.Ordinal)
            .Take(TopCount)
            .ToList();

        var budgets = services.GetService<IBudgetStore>();
        var forecast = await new UsageForecaster(queries, budgets, timeProvider).ForecastMonthAsync(cancellationToken).ConfigureAwait(false);
        var nearBudget = await UsersNearBudgetAsync(budgets, range.To, cancellationToken).ConfigureAwait(false);

        var names = await UserNamesAsync(topUsers.Select(u => u.UserId).Concat(nearBudget.Select(b => b.UserId)), cancellationToken).ConfigureAwait(false);

        return new UsageReport(
            period,
            range,
            previousRange,
            current,
            previous,
            topUsers.Select(u => new ReportUserRow(u.UserId, names.GetValueOrDefault(u.UserId).Username, names.GetValueOrDefault(u.UserId).Email, u.Calls, u.Tokens, u.Cost)).ToList(),
            topEndpoints,
            forecast,
            nearBudget.Select(b => b with { Username = names.GetValueOrDefault(b.UserId).Username }).ToList(),
            now);
    }

    /// <summary>Usernames and emails from the app's user directory, when it has one.</summary>
    private async ValueTask<IReadOnlyDictionary<string, (string? Username, string? Email)>> UserNamesAsync(IEnumerable<string> userIds, CancellationToken cancellationToken)
    {
        var directory = services.GetService<IUserDirectory>();
        var ids = userIds.Distinct(StringComparer.Ordinal).ToArray();
        if (directory is null || ids.Length == 0)
        {
            return new Dictionary<string, (string? Username, string? Email)>();
        }

        var found = await directory.GetUsersAsync(ids, cancellationToken).ConfigureAwait(false);
        return found.ToDictionary(kv => kv.Key, kv => (kv.Value.Username, kv.Value.Email), StringComparer.Ordinal);
    }

    private async ValueTask<ReportTotals> TotalsAsync(ReportRange range, CancellationToken cancellationToken)
    {
        var days = await queries.GetDailyUsageAsync(range.From, range.To, cancellationToken).ConfigureAwait(false);
        return new ReportTotals(days.Sum(d => d.Figures.Calls), days.Sum(d => d.Figures.TotalTokens), days.Sum(d => d.Figures.CostUsd));
    }

    /// <summary>Users whose spend in the month of <paramref name="asOfDay"/>, up to that day, passed 80% of a limit; highest share first.</summary>
    private async ValueTask<IReadOnlyList<ReportBudgetRow>> UsersNearBudgetAsync(IBudgetStore? budgets, DateOnly asOfDay, CancellationToken cancellationToken)
    {
        if (budgets is null)
        {
            return [];
        }

        var settings = await budgets.GetBudgetsAsync(cancellationToken).ConfigureAwait(false);
        var overrides = settings.Users.ToDictionary(u => u.UserId, StringComparer.Ordinal);
        var monthStart = new DateOnly(asOfDay.Year, asOfDay.Month, 1);
        var rows = await queries.GetUserEndpointUsageAsync(monthStart, asOfDay, null, cancellationToken).ConfigureAwait(false);

        var result = new List<ReportBudgetRow>();
        foreach (var user in rows.GroupBy(r => r.UserId, StringComparer.Ordinal))
        {
            var limit = overrides.TryGetValue(user.Key, out var own) ? own.Limit : settings.Default;
            if (limit is null || !limit.HasLimit)
            {
                continue;
            }

            var cost = user.Sum(r => r.Figures.CostUsd);
            var tokens = user.Sum(r => r.Figures.TotalTokens);
            var percent = 0m;
            if (limit.MonthlyCostUsd is > 0m and var costLimit)
            {
                percent = Math.Max(percent, cost / costLimit * 100m);
            }

            if (limit.MonthlyTokens is > 0 and var tokenLimit)
            {
                percent = Math.Max(percent, (decimal)tokens / tokenLimit * 100m);
            }

            if (percent >= BudgetWarningPercent)
            {
                result.Add(new ReportBudgetRow(user.Key, null, cost, limit.MonthlyCostUsd, tokens, limit.MonthlyTokens, Math.Round(percent, 1, MidpointRounding.ToEven)));
            }
        }

        return result.OrderByDescending(r => r.PercentUsed).ThenBy(r => r.UserId, StringComparer.Ordinal).ToList();
    }
}
