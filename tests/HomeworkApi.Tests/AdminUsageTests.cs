using System.Net;
using System.Net.Http.Json;
using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

/// <summary>The admin usage API mapped by the sample, with usernames and emails from its accounts, and budgets refusing calls.</summary>
public sealed class AdminUsageTests : IClassFixture<FakeModelFixture>
{
    private readonly FakeModelFixture _fixture;

    public AdminUsageTests(FakeModelFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    private HomeworkApp App => _fixture.App;

    [Fact]
    public async Task UsageApi_NeedsAdmin_AndShowsUsernamesFromAccounts()
    {
        var name = "u" + Guid.NewGuid().ToString("N")[..10];
        var (userId, token) = await App.RegisterAsync(name);
        var session = Guid.NewGuid().ToString("N");
        using var student = App.ClientWithToken(token);
        Assert.Equal(HttpStatusCode.OK, (await student.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "1+1", sessionId = session }))).StatusCode);
        await App.WaitForRecordsAsync(r => r.SessionId == session);
        using var anonymous = App.CreateClient();
        using var admin = App.ClientWithToken(await App.AdminTokenAsync());

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/usage/stats")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await student.GetAsync("/api/usage/stats")).StatusCode);
        var stats = await HomeworkApp.JsonAsync(await admin.GetAsync("/api/usage/stats"));
        Assert.True(stats["totalCalls"]!.GetValue<long>() >= 1);
        var detail = await HomeworkApp.JsonAsync(await admin.GetAsync("/api/usage/user/" + userId));
        Assert.Equal(name, detail["username"]!.GetValue<string>());
        Assert.Equal(name + "@example.com", detail["email"]!.GetValue<string>());
        Assert.Equal(1, detail["totalCalls"]!.GetValue<long>());
    }

    [Fact]
    public async Task UserOverBudget_Gets429WithRetryAfter_AndNoModelCall()
    {
        // 0.001 USD: a hint's worst case (gpt-4o-mini, 400 output tokens) fits; an analysis's (gpt-4o, 2,000) does not.
        var (userId, token) = await App.RegisterAsync();
        using var admin = App.ClientWithToken(await App.AdminTokenAsync());
        using var student = App.ClientWithToken(token);
        var session = Guid.NewGuid().ToString("N");

        var set = await admin.PutAsJsonAsync("/api/usage/budgets/" + userId, new { monthlyCostUsd = 0.001m });
        Assert.True(set.IsSuccessStatusCode, "setting the budget: " + set.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await student.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "1+1", sessionId = session }))).StatusCode);
        await App.WaitForRecordsAsync(r => r.SessionId == session);
        _fixture.Model.Reset();

        var refused = await student.PostAsync("/api/analyze", HomeworkApp.Json(new { problemText = "2+2", sessionId = session }));
        var refusedAdminCharge = await admin.PostAsync("/api/analyze", HomeworkApp.Json(new { problemText = "2+2", userId, sessionId = session }));

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.TooManyRequests, refusedAdminCharge.StatusCode);
        Assert.Equal(0, _fixture.Model.RequestCount);
        Assert.Single(await App.RecordsAsync(r => r.SessionId == session));
    }

    [Theory]
    [InlineData("99999")]
    [InlineData("'OR1=1")]
    public async Task BudgetForAUserWithNoAccount_Is404_AndNotListed(string userId)
    {
        using var admin = App.ClientWithToken(await App.AdminTokenAsync());

        var put = await admin.PutAsJsonAsync("/api/usage/budgets/" + Uri.EscapeDataString(userId), new { monthlyCostUsd = 1m });

        Assert.Equal(HttpStatusCode.NotFound, put.StatusCode);
        Assert.Equal("application/problem+json", put.Content.Headers.ContentType?.MediaType);
        var budgets = await HomeworkApp.JsonAsync(await admin.GetAsync("/api/usage/budgets"));
        Assert.DoesNotContain(budgets["users"]!.AsArray(), u => u!["userId"]!.GetValue<string>() == userId);
    }
}
