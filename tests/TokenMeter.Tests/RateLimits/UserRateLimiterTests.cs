using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TokenMeter.RateLimits;
using TokenMeter.Testing.Conformance;

namespace TokenMeter.Tests.RateLimits;

/// <summary>The limiter's record of each user's calls in flight, whose records' tokens settle the tokens window.</summary>
public sealed class UserRateLimiterTests
{
    private const long Limit = 1_000_000_000;

    [Fact]
    public async Task AUsersEntry_IsKeptWhileTheyKeepCalling_ForgottenOnceIdle_AndNeverWhileACallIsOpen()
    {
        var store = new InMemoryRateLimitStore();
        using var limiter = new UserRateLimiter(store, new ServiceCollection().BuildServiceProvider(), Options.Create(new RateLimitOptions { TokensPerMinute = Limit }), NullLogger<UserRateLimiter>.Instance);

        // One call at a time: the user's entry stays (it is not made again for every call), and each
        // call's record settles its tokens (100 estimated, 50 used).
        for (var i = 0; i < 10; i++)
        {
            await using var call = await limiter.CheckAsync("u1", "u1", 100);
            Assert.True(call.IsAllowed);
            limiter.Observe(UsageStoreConformanceTests.Call("u1", DateTimeOffset.UtcNow, "/api/hint", "gpt-4o-mini", 30, 20, 0.01m));
            Assert.Equal(1, limiter.OpenUsers);
        }

        Assert.Equal(10 * 50, await UsedAsync(store, "u1"));

        // A call open while many other users come and go (each once): their idle entries are
        // forgotten, the open call's is not, and its record still settles its tokens.
        var open = await limiter.CheckAsync("held", "held", 100);
        for (var i = 0; i < 5 * 4_096; i++)
        {
            var user = "x" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await using var other = await limiter.CheckAsync(user, user, 1);
        }

        Assert.InRange(limiter.OpenUsers, 2, (2 * 4_096) + 2);
        limiter.Observe(UsageStoreConformanceTests.Call("held", DateTimeOffset.UtcNow, "/api/hint", "gpt-4o-mini", 30, 20, 0.01m));
        await open.DisposeAsync();
        Assert.Equal(50, await UsedAsync(store, "held"));
    }

    private static async Task<long> UsedAsync(InMemoryRateLimitStore store, string user) =>
        (await store.AcquireAsync(new RateLimitRequest(UserRateLimiter.TokensKey(user), Guid.CreateVersion7(), DateTimeOffset.UtcNow, UserRateLimiter.Window, Limit, 1, MustFit: false))).Used;
}
