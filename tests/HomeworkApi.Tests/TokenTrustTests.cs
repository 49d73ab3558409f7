using System.Net;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using HomeworkApi.Accounts;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HomeworkApi.Tests;

/// <summary>
/// A token proves who signed in, nothing more: HS256 only, and the role (and the account's very
/// existence) is read from the account store, so deleting or demoting an account takes effect.
/// </summary>
public sealed class TokenTrustTests
{
    [Fact]
    public async Task TokenSignedWithHs512_EvenWithTheRightKey_IsRefused()
    {
        // HS512 needs a key of 64 bytes or more: the app gets one, and the admin's real account is named.
        const string longKey = "a-signing-key-long-enough-for-hs512-0123456789-0123456789-0123456789";
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Jwt:SigningKey"] = longKey });
        var adminId = (await HomeworkApp.JsonAsync(await app.ClientWithToken(await app.AdminTokenAsync()).GetAsync("/api/auth/me")))["id"]!.GetValue<string>();
        using var hs256 = app.ClientWithToken(Token(adminId, "admin", SecurityAlgorithms.HmacSha256, longKey));
        using var hs512 = app.ClientWithToken(Token(adminId, "admin", SecurityAlgorithms.HmacSha512, longKey));

        Assert.Equal(HttpStatusCode.OK, (await hs256.GetAsync("/api/usage/stats")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await hs512.GetAsync("/api/usage/stats")).StatusCode);
    }

    [Fact]
    public async Task TokenWhoseSubjectNamesNoAccount_IsRefused_WhateverItsRole()
    {
        await using var app = new HomeworkApp();
        using var client = app.ClientWithToken(Token("987654", "admin", SecurityAlgorithms.HmacSha256));

        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/usage/stats")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = "2+2" }))).StatusCode);
    }

    [Fact]
    public async Task PromotedThenDemoted_TheSameTokenFollowsTheStoredRole_AtOnceOnThisInstance()
    {
        await using var app = new HomeworkApp();
        var (id, token) = await app.RegisterAsync();
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());
        using var user = app.ClientWithToken(token);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/usage/stats")).StatusCode);

        var promoted = await admin.PutAsJsonAsync($"/api/users/{id}/role", new { role = "admin" });
        Assert.Equal(HttpStatusCode.OK, promoted.StatusCode);
        Assert.Equal("admin", (await HomeworkApp.JsonAsync(promoted))["role"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/usage/stats")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/users/{id}/role", new { role = "student" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/usage/stats")).StatusCode);
    }

    [Fact]
    public async Task DeletedAccount_ItsTokenStopsWorking_UsageKeepsTheId()
    {
        await using var app = new HomeworkApp();
        var (id, token) = await app.RegisterAsync();
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());
        using var user = app.ClientWithToken(token);
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/auth/me")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/users/{id}")).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await user.GetAsync("/api/auth/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await user.GetAsync("/api/usage/me")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync($"/api/users/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PutAsJsonAsync($"/api/users/{id}/role", new { role = "admin" })).StatusCode);
    }

    [Fact]
    public async Task AdminRoutes_RefuseBadRoles_AndTheCallersOwnAccount()
    {
        await using var app = new HomeworkApp();
        var (id, studentToken) = await app.RegisterAsync();
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());
        using var student = app.ClientWithToken(studentToken);
        var adminId = (await HomeworkApp.JsonAsync(await admin.GetAsync("/api/auth/me")))["id"]!.GetValue<string>();

        Assert.Equal(HttpStatusCode.BadRequest, (await admin.PutAsJsonAsync($"/api/users/{id}/role", new { role = "root" })).StatusCode);

        // A body that is not JSON is a 400 problem naming the content type, like every other route (never a bare 415).
        foreach (var notJson in new[] { new StringContent("role=admin", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"), new StringContent("admin", System.Text.Encoding.UTF8, "text/plain") })
        {
            using var response = await admin.PutAsync($"/api/users/{id}/role", notJson);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("Content-Type: application/json", (await HomeworkApp.JsonAsync(response))["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.Conflict, (await admin.PutAsJsonAsync($"/api/users/{adminId}/role", new { role = "student" })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await admin.DeleteAsync($"/api/users/{adminId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await student.PutAsJsonAsync($"/api/users/{id}/role", new { role = "admin" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await student.DeleteAsync($"/api/users/{adminId}")).StatusCode);
    }

    [Fact]
    public async Task RoleChangedElsewhere_AppliesWithinTheRoleCacheTime()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var app = new HomeworkApp { TestServices = s => s.AddSingleton<TimeProvider>(clock) };
        var (id, token) = await app.RegisterAsync();
        var store = app.Services.GetRequiredService<IAccountStore>();
        using var user = app.ClientWithToken(token);
        var account = await store.FindByIdAsync(long.Parse(id, System.Globalization.CultureInfo.InvariantCulture), CancellationToken.None);
        await store.UpdateAsync(account! with { Role = Roles.Admin }, CancellationToken.None);
        clock.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/usage/stats")).StatusCode);

        // Demoted by another instance (straight in the store): the cached role serves for at most 30 s.
        await store.UpdateAsync(account! with { Role = Roles.Student }, CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/usage/stats")).StatusCode);
        clock.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/usage/stats")).StatusCode);
    }

    [Fact]
    public async Task Role_IsReadFromTheStoreOncePerCacheTime_AndAgainInTheBackgroundPastHalfOfIt()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new CountingStore(new InMemoryAccountStore(clock));
        await using var app = new HomeworkApp
        {
            TestServices = s =>
            {
                s.AddSingleton<TimeProvider>(clock);
                s.AddSingleton<IAccountStore>(store);
            },
        };
        var (id, token) = await app.RegisterAsync();
        using var user = app.ClientWithToken(token);
        var accountId = long.Parse(id, System.Globalization.CultureInfo.InvariantCulture);

        // Within half the cache time: one read of the role for any number of signed-in requests (/api/info reads no account itself).
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/info")).StatusCode);
        var reads = store.Reads(accountId);
        Assert.True(reads >= 1);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/info")).StatusCode);
        }

        Assert.Equal(reads, store.Reads(accountId));

        // Promoted elsewhere; past half the cache time the cached role still answers while it is read again behind
        // the request, and the next requests see the new role before the cache time is up (the clock stands still).
        var account = await store.FindByIdAsync(accountId, CancellationToken.None);
        await store.UpdateAsync(account! with { Role = Roles.Admin }, CancellationToken.None);
        clock.Advance(TimeSpan.FromSeconds(16));
        Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/usage/stats")).StatusCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        HttpStatusCode status;
        while ((status = (await user.GetAsync("/api/usage/stats")).StatusCode) != HttpStatusCode.OK && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(reads + 2, store.Reads(accountId));   // the one for the update above, and the background one
    }

    /// <summary>The in-memory store, counting reads by id (the role lookups).</summary>
    private sealed class CountingStore(IAccountStore inner) : IAccountStore
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<long, int> _reads = new();

        public int Reads(long id) => _reads.GetValueOrDefault(id);

        public ValueTask InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

        public ValueTask<(Account? Account, CreateAccountError Error)> CreateAsync(string username, string email, string passwordHash, string role, CancellationToken cancellationToken) =>
            inner.CreateAsync(username, email, passwordHash, role, cancellationToken);

        public ValueTask<Account?> FindByUsernameAsync(string username, CancellationToken cancellationToken) => inner.FindByUsernameAsync(username, cancellationToken);

        public ValueTask<Account?> FindByIdAsync(long id, CancellationToken cancellationToken)
        {
            _reads.AddOrUpdate(id, 1, (_, n) => n + 1);
            return inner.FindByIdAsync(id, cancellationToken);
        }

        public ValueTask<IReadOnlyList<Account>> FindByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken cancellationToken) => inner.FindByIdsAsync(ids, cancellationToken);

        public ValueTask UpdateAsync(Account account, CancellationToken cancellationToken) => inner.UpdateAsync(account, cancellationToken);

        public ValueTask<bool> DeleteAsync(long id, CancellationToken cancellationToken) => inner.DeleteAsync(id, cancellationToken);

        public ValueTask<AccountPage> ListAsync(int limit, int offset, string? search, CancellationToken cancellationToken) => inner.ListAsync(limit, offset, search, cancellationToken);
    }

    /// <summary>A token with the app's issuer, audience and key, signed with <paramref name="algorithm"/>.</summary>
    private static string Token(string subject, string role, string algorithm, string signingKey = HomeworkApp.SigningKey)
    {
        var key = Encoding.UTF8.GetBytes(signingKey);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "HomeworkApi",
            Audience = "HomeworkApi",
            Expires = DateTime.UtcNow.AddHours(1),
            Subject = new ClaimsIdentity([new Claim("sub", subject), new Claim("unique_name", "mallory"), new Claim("role", role)]),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(key), algorithm),
        });
    }
}
