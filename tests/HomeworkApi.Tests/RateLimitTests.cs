using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;
using HomeworkApi.Hosting;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Time.Testing;
using TokenMeter;
using TokenMeter.AspNetCore.RateLimits;
using TokenMeter.RateLimits;
using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests;

/// <summary>The app with the requests-per-minute limit on, its limits reading a fake clock; the fake model answers.</summary>
public class RateLimitFixture : FakeModelFixture
{
    public const int RequestsPerMinute = 10;
    public const int TokensPerMinute = 2500;

    /// <summary>
    /// Tokens per minute in this app: off here, so a burst meets only the requests limit (with it on,
    /// the estimates of calls in flight fill the tokens window first: see <see cref="TokenRateLimitTests"/>).
    /// </summary>
    protected virtual int TokensLimit => 0;

    /// <summary>The clock of the rate limits only; the rest of the app (the usage writer included) keeps real time.</summary>
    public FakeTimeProvider Clock { get; } = new();

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homework:RateLimits:RequestsPerMinute"] = RequestsPerMinute.ToString(CultureInfo.InvariantCulture),
        ["Homework:RateLimits:TokensPerMinute"] = TokensLimit.ToString(CultureInfo.InvariantCulture),
    };

    protected override void ConfigureServices(IServiceCollection services) =>
        services.AddKeyedSingleton<TimeProvider>(UserRateLimiter.ClockKey, Clock);
}

/// <summary>The app with both per-minute limits on.</summary>
public sealed class TokenRateLimitFixture : RateLimitFixture
{
    protected override int TokensLimit => TokensPerMinute;
}

/// <summary>CONTRACT §9: <c>Homework:RateLimits:RequestsPerMinute</c> and <c>TokensPerMinute</c> on the homework routes.</summary>
public sealed class RateLimitTests : IClassFixture<RateLimitFixture>
{
    internal const string RateLimitedType = "https://tokenmeter.dev/problems/rate-limited";
    internal const string HintBody = """{"problemText":"Solve 2x + 3 = 7"}""";
    private readonly RateLimitFixture _fixture;

    public RateLimitTests(RateLimitFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    private HomeworkApp App => _fixture.App;

    [Fact]
    public async Task Requests_FiftyParallelForOneUser_TenSucceed_FortyRefusedWith429_AndTheModelIsCalledTenTimes()
    {
        var (userId, token) = await App.RegisterAsync();
        using var rejections = Rejections();
        using var client = App.ClientWithToken(token);

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => HintAsync(client)));

        Assert.Equal(10, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(40, refused.Count);
        foreach (var response in refused)
        {
            // The clock of the limits stands still, so every permit frees up exactly a minute from now.
            Assert.Equal("60", Assert.Single(response.Headers.GetValues("Retry-After")));
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await HomeworkApp.JsonAsync(response);
            Assert.Equal(RateLimitedType, problem["type"]!.GetValue<string>());
            Assert.Equal(429, problem["status"]!.GetValue<int>());
            Assert.Equal("requests", problem["limit"]!.GetValue<string>());
            Assert.Equal(60, problem["retryAfterSeconds"]!.GetValue<long>());
            Assert.Contains("10 requests per minute", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        Assert.Equal(10, _fixture.Model.RequestCount);
        Assert.Equal(10, (await App.WaitForRecordsAsync(r => r.UserId == userId, 10)).Count);
        Assert.Equal(40, Count(rejections, "requests"));
        Assert.Equal(0, Count(rejections, "tokens"));
    }

    [Fact]
    public async Task Requests_TwoUsersInParallel_AreLimitedIndependently()
    {
        var (first, firstToken) = await App.RegisterAsync();
        var (second, secondToken) = await App.RegisterAsync();
        using var firstClient = App.ClientWithToken(firstToken);
        using var secondClient = App.ClientWithToken(secondToken);

        async Task<(string User, HttpStatusCode Status)> VerifyAsync(string user, HttpClient client) =>
            (user, (await client.PostAsync("/api/verify", HomeworkApp.RawJson("""{"problemText":"2+2","answer":"4"}"""))).StatusCode);

        var results = await Task.WhenAll(Enumerable.Range(0, 15).SelectMany(_ => new[] { VerifyAsync(first, firstClient), VerifyAsync(second, secondClient) }));

        foreach (var user in new[] { first, second })
        {
            var mine = results.Where(r => r.User == user).Select(r => r.Status).ToList();
            Assert.Equal(10, mine.Count(s => s == HttpStatusCode.OK));
            Assert.Equal(5, mine.Count(s => s == HttpStatusCode.TooManyRequests));
        }

        Assert.Equal(20, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task Requests_AdminChargingAStudent_CountAgainstTheStudent_NotTheAdmin()
    {
        var (student, studentToken) = await App.RegisterAsync();
        using var studentClient = App.ClientWithToken(studentToken);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await HintAsync(studentClient)).StatusCode);
        }

        using var adminClient = App.ClientWithToken(await App.AdminTokenAsync());
        var onBehalf = await adminClient.PostAsync("/api/hint", HomeworkApp.RawJson($$"""{"problemText":"2+2","userId":"{{student}}"}"""));
        using var anonymousClient = App.CreateClient();
        var anonymousOnBehalf = await anonymousClient.PostAsync("/api/hint", HomeworkApp.RawJson($$"""{"problemText":"2+2","userId":{{student}}}"""));
        var own = await HintAsync(adminClient);

        Assert.Equal(HttpStatusCode.TooManyRequests, onBehalf.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymousOnBehalf.StatusCode);
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        Assert.Equal(11, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task Requests_Anonymous_ArePartitionedByClientAddress()
    {
        var first = RandomAddress();
        var second = RandomAddress();

        var statuses = new List<int>();
        for (var i = 0; i < 11; i++)
        {
            statuses.Add((await PostFromAsync(first, HintBody)).Response.StatusCode);
        }

        var other = await PostFromAsync(second, HintBody);

        Assert.Equal(Enumerable.Repeat(200, 10).Append(429), statuses);
        Assert.Equal(200, other.Response.StatusCode);
        Assert.Equal(11, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task Requests_RetryAfterCountsDownWithTheWindow_AndAPermitFreesUpWhenItSaysSo()
    {
        var (_, token) = await App.RegisterAsync();
        using var client = App.ClientWithToken(token);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await HintAsync(client)).StatusCode);
            _fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        }

        // Ten permits granted at t = 0..9 s; now t = 10 s: the first frees up at t = 60 s.
        var refused = await HintAsync(client);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("50", Assert.Single(refused.Headers.GetValues("Retry-After")));

        _fixture.Clock.Advance(TimeSpan.FromSeconds(49.5));
        var almost = await HintAsync(client);
        Assert.Equal(HttpStatusCode.TooManyRequests, almost.StatusCode);
        Assert.Equal("1", Assert.Single(almost.Headers.GetValues("Retry-After")));

        _fixture.Clock.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(HttpStatusCode.OK, (await HintAsync(client)).StatusCode);

        // Only one permit freed up (the second frees at t = 61 s).
        var next = await HintAsync(client);
        Assert.Equal(HttpStatusCode.TooManyRequests, next.StatusCode);
        Assert.Equal("1", Assert.Single(next.Headers.GetValues("Retry-After")));
        Assert.Equal(11, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task Requests_InvalidBodies_AreRefusedAs400_WithoutSpendingAPermit()
    {
        var (_, token) = await App.RegisterAsync();
        using var client = App.ClientWithToken(token);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/api/hint", HomeworkApp.RawJson("{}"))).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await HintAsync(client)).StatusCode);
    }

    [Theory]
    [InlineData("Homework:RateLimits:RequestsPerMinute", "-1")]
    [InlineData("Homework:RateLimits:TokensPerMinute", "-5")]
    [InlineData("Homework:RateLimits:RequestsPerMinute", "ten")]
    public void Settings_NegativeOrNotANumber_FailStartWithMessageNamingTheKey(string key, string value)
    {
        using var app = new HomeworkApp(new Dictionary<string, string?> { [key] = value });

        var error = Assert.ThrowsAny<Exception>(() => app.Server);

        var message = error is AggregateException a ? a.Flatten().InnerExceptions[0].Message : error.Message;
        Assert.Contains(key, message, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_Unset_ThirtyRequestsPerMinute_TokensOff()
    {
        var settings = HomeworkSettings.Load(new ConfigurationBuilder().Build(), new HostingEnvironment { EnvironmentName = Environments.Development });

        Assert.Equal(30, settings.RequestsPerMinute);
        Assert.Equal(0, settings.TokensPerMinute);
    }

    internal static Task<HttpResponseMessage> HintAsync(HttpClient client) => client.PostAsync("/api/hint", HomeworkApp.RawJson(HintBody));

    private MetricCollector<long> Rejections() => Rejections(App);

    internal static MetricCollector<long> Rejections(HomeworkApp app) =>
        new(app.Services.GetRequiredService<IMeterFactory>(), TokenMeterDiagnostics.MeterName, "tokenmeter.rate_limit.rejections");

    internal static long Count(MetricCollector<long> collector, string limit) =>
        collector.GetMeasurementSnapshot().Where(m => m.Tags["limit"] as string == limit).Sum(m => m.Value);

    private static IPAddress RandomAddress() => new([10, (byte)Random.Shared.Next(256), (byte)Random.Shared.Next(256), (byte)Random.Shared.Next(1, 255)]);

    /// <summary>An anonymous POST to /api/hint from <paramref name="address"/>: TestServer lets a test set the connection's remote address.</summary>
    private Task<HttpContext> PostFromAsync(IPAddress address, string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        return App.Server.SendAsync(c =>
        {
            c.Connection.RemoteIpAddress = address;
            c.Request.Method = HttpMethods.Post;
            c.Request.Path = "/api/hint";
            c.Request.ContentType = "application/json";
            c.Request.ContentLength = bytes.Length;
            c.Request.Body = new MemoryStream(bytes);
        });
    }
}

/// <summary>
/// CONTRACT §9 <c>TokensPerMinute</c>: each call reserves its worst case (prompt + max output tokens)
/// before it and settles to the tokens it used after it; a call is let in while the window is below the limit.
/// </summary>
public sealed class TokenRateLimitTests : IClassFixture<TokenRateLimitFixture>
{
    private const string HintBody = RateLimitTests.HintBody;
    private const string RateLimitedType = RateLimitTests.RateLimitedType;
    private readonly TokenRateLimitFixture _fixture;

    public TokenRateLimitTests(TokenRateLimitFixture fixture)
    {
        _fixture = fixture;
        fixture.Reset();
    }

    private HomeworkApp App => _fixture.App;

    [Fact]
    public async Task Tokens_OverTheLimit_NextCallRefusedWithoutModelCall_AndAllowedAgainAfterTheWindow()
    {
        var (userId, token) = await App.RegisterAsync();
        using var rejections = Rejections();
        using var client = App.ClientWithToken(token);
        _fixture.Model.Responder = r => FakeModelReplies.For(r, new FakeUsage { PromptTokens = 1200, CompletionTokens = 300 });

        // 1500 tokens, then 3000: the second call was let in below the limit of 2500 and may overshoot it.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/analyze", HomeworkApp.RawJson(HintBody))).StatusCode);
        _fixture.Clock.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/analyze", HomeworkApp.RawJson(HintBody))).StatusCode);
        _fixture.Clock.Advance(TimeSpan.FromSeconds(10));

        var refused = await client.PostAsync("/api/analyze", HomeworkApp.RawJson(HintBody));

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        // 3000 used; dropping the first call's 1500 (at t = 0) brings it under 2500 at t = 60 s; now t = 30 s.
        Assert.Equal("30", Assert.Single(refused.Headers.GetValues("Retry-After")));
        var problem = await HomeworkApp.JsonAsync(refused);
        Assert.Equal(RateLimitedType, problem["type"]!.GetValue<string>());
        Assert.Equal("tokens", problem["limit"]!.GetValue<string>());
        Assert.Equal(3000, problem["tokensUsed"]!.GetValue<long>());
        Assert.Equal(2500, problem["tokensPerMinute"]!.GetValue<long>());
        Assert.Contains("2500 tokens per minute", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(2, _fixture.Model.RequestCount);
        Assert.Equal(1, Count(rejections, "tokens"));

        _fixture.Clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await client.PostAsync("/api/analyze", HomeworkApp.RawJson(HintBody))).StatusCode);
        _fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/analyze", HomeworkApp.RawJson(HintBody))).StatusCode);

        Assert.Equal(3, _fixture.Model.RequestCount);
        Assert.Equal(3, (await App.WaitForRecordsAsync(r => r.UserId == userId, 3)).Count);
        Assert.Equal(2, Count(rejections, "tokens"));
        Assert.Equal(0, Count(rejections, "requests"));
    }

    [Fact]
    public async Task Tokens_OfAStreamedChat_CountOnceTheStreamEnds()
    {
        var (_, token) = await App.RegisterAsync();
        using var client = App.ClientWithToken(token);
        _fixture.Model.Responder = r => FakeModelReplies.For(r, new FakeUsage { PromptTokens = 2000, CompletionTokens = 600 });

        var stream = await client.PostAsync("/api/chat", HomeworkApp.RawJson("""{"messages":[{"role":"user","content":"Where do I start?"}],"stream":true}"""));
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Contains("event: done", await stream.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var refused = await HintAsync(client);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("tokens", (await HomeworkApp.JsonAsync(refused))["limit"]!.GetValue<string>());
        Assert.Equal(1, _fixture.Model.RequestCount);
    }

    [Fact]
    public async Task Tokens_ABurstIsAdmittedOnlyWhileTheReservedEstimatesFit_AndRefusedCallsNeverReachTheModel()
    {
        var (_, token) = await App.RegisterAsync();
        using var client = App.ClientWithToken(token);
        _fixture.Model.Responder = r => FakeModelReplies.For(r, new FakeUsage { PromptTokens = 100, CompletionTokens = 50 });

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => HintAsync(client)));

        var ok = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.InRange(ok, 1, RateLimitFixture.RequestsPerMinute);
        Assert.Equal(20 - ok, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        Assert.Equal(ok, _fixture.Model.RequestCount);
    }

    private static Task<HttpResponseMessage> HintAsync(HttpClient client) => RateLimitTests.HintAsync(client);

    private MetricCollector<long> Rejections() => RateLimitTests.Rejections(App);

    private static long Count(MetricCollector<long> collector, string limit) => RateLimitTests.Count(collector, limit);
}

/// <summary>The in-process window on its own, on a fake clock.</summary>
public sealed class RateLimitWindowTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private readonly FakeTimeProvider _clock = new();
    private readonly InMemoryRateLimitStore _store = new();

    [Fact]
    public async Task Requests_FreeEachPermitAMinuteAfterItWasGranted()
    {
        for (var i = 0; i < 3; i++)
        {
            Assert.True((await RequestAsync("a", 3)).Allowed);
            _clock.Advance(TimeSpan.FromSeconds(10));
        }

        var refused = await RequestAsync("a", 3);
        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(30), refused.RetryAfter);

        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.True((await RequestAsync("a", 3)).Allowed);
        Assert.False((await RequestAsync("a", 3)).Allowed);
        Assert.True((await RequestAsync("b", 3)).Allowed);
    }

    [Fact]
    public async Task Requests_LargeLimit_RetryAfterIsWhenTheOldestLeaves()
    {
        for (var i = 0; i < 1000; i++)
        {
            Assert.True((await RequestAsync("a", 1000)).Allowed);
            _clock.Advance(TimeSpan.FromMilliseconds(10));
        }

        var refused = await RequestAsync("a", 1000);
        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(50), refused.RetryAfter);
    }

    [Fact]
    public async Task Tokens_AdmitWhileBelowTheLimit_SettleReplacesTheEstimate_AndIdlePartitionsAreSwept()
    {
        var first = Guid.NewGuid();
        Assert.True((await TokensAsync("u", first, 800, 1000)).Allowed);
        Assert.True((await TokensAsync("u", Guid.NewGuid(), 800, 1000)).Allowed);
        var refused = await TokensAsync("u", Guid.NewGuid(), 10, 1000);
        Assert.False(refused.Allowed);
        Assert.Equal(1600, refused.Used);

        await _store.SettleAsync("u", first, 100);
        Assert.True((await TokensAsync("u", Guid.NewGuid(), 10, 1000)).Allowed);
        for (var i = 0; i < 50; i++)
        {
            await TokensAsync("idle" + i.ToString(CultureInfo.InvariantCulture), Guid.NewGuid(), 1, 1000);
        }

        _clock.Advance(TimeSpan.FromSeconds(61));
        Assert.True((await TokensAsync("late", Guid.NewGuid(), 5, 1000)).Allowed);
        Assert.Equal(1, _store.PartitionCount);
    }

    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    public void AnonymousPartition_IsTheIPv4Address_OrTheIPv6Slash64(string address, string key) =>
        Assert.Equal(key, RateLimitPartitions.AddressKey(IPAddress.Parse(address)));

    private ValueTask<RateLimitResult> RequestAsync(string key, int limit) =>
        _store.AcquireAsync(new RateLimitRequest(key, Guid.NewGuid(), _clock.GetUtcNow(), Minute, limit, 1, MustFit: true));

    private ValueTask<RateLimitResult> TokensAsync(string key, Guid id, long amount, long limit) =>
        _store.AcquireAsync(new RateLimitRequest(key, id, _clock.GetUtcNow(), Minute, limit, amount, MustFit: false));
}
