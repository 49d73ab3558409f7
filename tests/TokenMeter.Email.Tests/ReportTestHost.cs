using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Budgets;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.Email.Tests;

/// <summary>One app instance's report services over a store that several instances may share.</summary>
internal static class ReportTestHost
{
    public static ServiceProvider Create(InMemoryUsageStore store, FakeTimeProvider time, int smtpPort, params string[] schedule)
    {
        var settings = new Dictionary<string, string?>
        {
            ["TokenMeter:Reports:Smtp:Host"] = "127.0.0.1",
            ["TokenMeter:Reports:Smtp:Port"] = smtpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TokenMeter:Reports:Smtp:UseTls"] = "false",
            ["TokenMeter:Reports:Smtp:From"] = "TokenMeter <reports@example.test>",
            ["TokenMeter:Reports:To:0"] = "ops@example.test",
            ["TokenMeter:Reports:To:1"] = "finance@example.test",
        };
        for (var i = 0; i < schedule.Length; i++)
        {
            settings[$"TokenMeter:Reports:Schedule:{i}"] = schedule[i];
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddSingleton<TimeProvider>(time);
        services.AddSingleton<IUsageQueries>(store);
        services.AddSingleton<IBudgetStore>(store);
        services.AddSingleton<IDeliveryLog>(store);
        services.AddTokenMeter().AddUsageReports().AddSmtpEmail();
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
    }

    public static UsageRecord Record(DateTimeOffset at, string? userId, string endpoint, string model, long input, long output, decimal cost) => new()
    {
        Id = Guid.CreateVersion7(at),
        CreatedAt = at,
        UserId = userId,
        Endpoint = endpoint,
        Model = model,
        InputTokens = input,
        OutputTokens = output,
        TotalTokens = input + output,
        CostUsd = cost,
        Status = UsageStatus.Ok,
    };
}
