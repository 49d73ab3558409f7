using TokenMeter.Billing;
using TokenMeter.Querying;

namespace TokenMeter.Tests.Billing;

public sealed class StatementCalculatorTests
{
    private static readonly DateOnly November = new(2026, 11, 1);

    [Theory]
    [InlineData("0.125", "0", "0.12")]
    [InlineData("0.135", "0", "0.14")]
    [InlineData("0.03", "50", "0.04")] // 0.045 goes to the even cent
    [InlineData("0.01", "50", "0.02")] // 0.015 goes to the even cent
    [InlineData("1.00", "10", "1.10")]
    [InlineData("12.3456789", "20", "14.81")]
    [InlineData("0", "20", "0.00")]
    public void ApplyMarkup_RoundsToCentsHalfToEven(string cost, string markup, string expected)
    {
        Assert.Equal(decimal.Parse(expected, System.Globalization.CultureInfo.InvariantCulture),
            StatementCalculator.ApplyMarkup(decimal.Parse(cost, System.Globalization.CultureInfo.InvariantCulture), decimal.Parse(markup, System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Build_OrdersLinesCostliestFirstThenByEndpointAndModel_TiesKeepingTheirOrder()
    {
        // Equal costs (some written with another scale), null endpoints and models, and repeated pairs in any order.
        var random = new Random(4);
        string?[] endpoints = [null, "/api/a", "/api/B", "/api/b", "Émile"];
        string?[] models = [null, "m1", "m10", "m2"];
        decimal[] costs = [0m, 0.5m, 0.50m, 1.25m, 0.0001m];
        var rows = Enumerable.Range(0, 400).Select(i => new UserEndpointUsage(
            "u" + random.Next(5),
            endpoints[random.Next(endpoints.Length)],
            models[random.Next(models.Length)],
            new UsageFigures(i, i, 0, 0, 0, i, costs[random.Next(costs.Length)]))).ToArray();

        var statement = StatementCalculator.Build(November, rows, 0m);

        // What the ordering was written as: a stable sort by cost descending, endpoint, model (ordinal).
        var expected = rows.GroupBy(r => r.UserId, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => g.OrderByDescending(r => r.Figures.CostUsd).ThenBy(r => r.Endpoint, StringComparer.Ordinal).ThenBy(r => r.Model, StringComparer.Ordinal)
                .Select(r => (g.Key, r.Endpoint, r.Model, r.Figures)));
        Assert.Equal(expected, statement.Items.SelectMany(i => i.Lines.Select(l => (i.UserId, l.Endpoint, l.Model, l.Figures))));
        Assert.Equal(rows.Sum(r => r.Figures.CostUsd), statement.TotalCostUsd);

        // The same rows already in that order (as the PostgreSQL store returns them) are taken run by run: the same lines.
        var ordered = expected.Select(e => new UserEndpointUsage(e.Key, e.Endpoint, e.Model, e.Figures)).ToList();
        var again = StatementCalculator.Build(November, ordered, 0m);
        Assert.Equal(expected, again.Items.SelectMany(i => i.Lines.Select(l => (i.UserId, l.Endpoint, l.Model, l.Figures))));
        Assert.Equal(statement.Items.Select(i => (i.UserId, i.CostUsd, i.AmountUsd)), again.Items.Select(i => (i.UserId, i.CostUsd, i.AmountUsd)));
    }

    [Fact]
    public void Build_GroupsLinesByUser_AndTotalsTheRoundedAmounts()
    {
        UserEndpointUsage[] rows =
        [
            new("u2", "/api/chat", "gpt-4o-mini", new UsageFigures(3, 300, 0, 90, 0, 390, 0.005m)),
            new("u1", "/api/hint", "gpt-4o-mini", new UsageFigures(2, 200, 50, 40, 0, 240, 0.0125m)),
            new("u1", "/api/analyze", "gpt-4o", new UsageFigures(1, 1000, 0, 500, 0, 1500, 0.0075m)),
        ];

        var statement = StatementCalculator.Build(November, rows, 0m);

        Assert.Equal(["u1", "u2"], statement.Items.Select(i => i.UserId));
        var u1 = statement.Items[0];
        Assert.Equal(["/api/hint", "/api/analyze"], u1.Lines.Select(l => l.Endpoint));
        Assert.Equal(0.02m, u1.CostUsd);
        Assert.Equal(0.02m, u1.AmountUsd);
        Assert.Equal(0.005m, statement.Items[1].CostUsd);
        Assert.Equal(0.00m, statement.Items[1].AmountUsd); // half a cent rounds to the even 0
        Assert.Equal(0.025m, statement.TotalCostUsd);
        Assert.Equal(0.02m, statement.TotalAmountUsd);
        Assert.Equal("USD", statement.Currency);
        Assert.Equal(November, statement.Month);
    }

    [Fact]
    public void Build_WithMarkup_AppliesItToEveryUser()
    {
        UserEndpointUsage[] rows =
        [
            new("a", "/api/chat", "gpt-4o-mini", new UsageFigures(10, 1, 0, 1, 0, 2, 1.234567m)),
            new("b", "/api/chat", "gpt-4o-mini", new UsageFigures(10, 1, 0, 1, 0, 2, 2.5m)),
        ];

        var statement = StatementCalculator.Build(November, rows, 25m);

        Assert.Equal(25m, statement.MarkupPercent);
        Assert.Equal(1.54m, statement.Items[0].AmountUsd); // 1.54320875
        Assert.Equal(3.12m, statement.Items[1].AmountUsd); // 3.125 to the even cent
        Assert.Equal(3.734567m, statement.TotalCostUsd);
        Assert.Equal(4.66m, statement.TotalAmountUsd);
    }

    [Fact]
    public void Build_NoUsage_IsEmpty()
    {
        var statement = StatementCalculator.Build(November, [], 10m);

        Assert.Empty(statement.Items);
        Assert.Equal(0m, statement.TotalCostUsd);
        Assert.Equal(0m, statement.TotalAmountUsd);
    }
}
