using TokenMeter.AspNetCore.Tests.Alerts;
using TokenMeter.AspNetCore.Tests.Budgets;
using TokenMeter.AspNetCore.Tests.Endpoints;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.AspNetCore.Tests;

// The same API, export, budget and alert tests, on PostgreSQL (a fresh database per test).

public sealed class PostgresAuthorizationTests(PostgresDatabaseFixture database) : AuthorizationTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}

public sealed class PostgresUsageApiTests(PostgresDatabaseFixture database) : UsageApiTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}

public sealed class PostgresExportTests(PostgresDatabaseFixture database) : ExportTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}

public sealed class PostgresBudgetEnforcementTests(PostgresDatabaseFixture database) : BudgetEnforcementTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}

public sealed class PostgresAlertTests(PostgresDatabaseFixture database) : AlertTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}
