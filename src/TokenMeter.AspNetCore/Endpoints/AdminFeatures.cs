using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Billing;
using TokenMeter.Budgets;
using TokenMeter.Reports;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary>Which TokenMeter features the app added on the builder: the admin API maps and reads only those.</summary>
internal sealed class AdminFeatures(IServiceProvider services)
{
    private readonly IServiceProviderIsService? _isService = services.GetService<IServiceProviderIsService>();

    /// <summary><c>.AddBudgets()</c>: budget routes, the users' forecast, budgets on <c>/me</c>.</summary>
    public bool Budgets => Has(typeof(BudgetGuard));

    /// <summary><c>.AddStatements()</c>: the statement routes.</summary>
    public bool Statements => Has(typeof(StatementClosedNotifier));

    /// <summary><c>.AddUsageReports()</c>: sending a report now.</summary>
    public bool Reports => Has(typeof(UsageReportService));

    /// <summary>The budget store when budgets were added; otherwise null, so nothing reads budgets.</summary>
    public static IBudgetStore? BudgetStore(IServiceProvider services)
        => services.GetService<BudgetGuard>() is null ? null : services.GetService<IBudgetStore>();

    private bool Has(Type service) => _isService?.IsService(service) ?? services.GetService(service) is not null;
}
