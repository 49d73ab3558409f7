using System.Net.Http.Headers;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Budgets;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.AspNetCore.Tests.Hosting;

/// <summary>A minimal app hosting the admin API on the test server, over the store a test picks.</summary>
internal sealed class TestApp : IAsyncDisposable
{
    public static readonly DateTimeOffset Now = new(2026, 11, 25, 6, 30, 0, TimeSpan.Zero);

    private TestApp(WebApplication app, FakeTimeProvider time)
    {
        App = app;
        Time = time;
        Client = app.GetTestClient();
    }

    public WebApplication App { get; }

    public FakeTimeProvider Time { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => App.Services;

    public IUsageStore Store => Services.GetRequiredService<IUsageStore>();

    public IUsageQueries Queries => Services.GetRequiredService<IUsageQueries>();

    public IBudgetStore Budgets => Services.GetRequiredService<IBudgetStore>();

    public static async Task<TestApp> StartAsync(
        Action<WebApplicationBuilder>? configure = null,
        Action<WebApplication>? map = null,
        Action<ITokenMeterBuilder>? store = null)
    {
        var time = new FakeTimeProvider(Now);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddAuthentication(TestAuthHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, TestAuthHandler>(TestAuthHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddOpenApi();
        var tokenMeter = builder.Services.AddTokenMeter();
        store?.Invoke(tokenMeter);
        tokenMeter.AddTokenMeterAspNetCore()
            .AddBudgets()
            .AddAlerts()
            .AddUsageReports()
            .AddStatements()
            .AddSmtpEmail();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapOpenApi();
        app.MapTokenMeterAdmin("/api/usage");
        map?.Invoke(app);
        await app.StartAsync();
        return new TestApp(app, time);
    }

    /// <summary>A client signed in as <paramref name="userId"/> with <paramref name="role"/>; null user for anonymous.</summary>
    public HttpClient As(string? userId, string? role = null)
    {
        var client = App.GetTestClient();
        if (userId is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(TestAuthHandler.SchemeName, $"{userId};{role}");
        }

        return client;
    }

    public HttpClient Admin() => As("admin-1", "admin");

    public async Task SeedAsync(params UsageRecord[] records) => await Store.AppendAsync(records);

    public static UsageRecord Record(
        string? userId,
        decimal? cost,
        long tokens = 100,
        string? endpoint = "/api/hint",
        string? model = "gpt-4o-mini",
        DateTimeOffset? at = null,
        string? sessionId = null,
        string? problemId = null,
        IReadOnlyDictionary<string, string>? tags = null) => new()
        {
            Id = Guid.CreateVersion7(),
            CreatedAt = at ?? Now.AddMinutes(-5),
            UserId = userId,
            Endpoint = endpoint,
            Operation = UsageOperation.Chat,
            RequestModel = model,
            Model = model,
            InputTokens = tokens * 3 / 4,
            CachedInputTokens = tokens / 10,
            OutputTokens = tokens - (tokens * 3 / 4),
            ReasoningTokens = tokens / 20,
            TotalTokens = tokens,
            CostUsd = cost,
            Status = UsageStatus.Ok,
            SessionId = sessionId,
            ProblemId = problemId,
            Tags = tags,
        };

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
