using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

public sealed class AccountsTests(FakeModelFixture fixture) : IClassFixture<FakeModelFixture>
{
    private HomeworkApp App => fixture.App;

    [Fact]
    public async Task Register_NewUser_Returns201WithStringIdAndStudentRole_AndLoginReturnsBearerToken()
    {
        using var client = App.CreateClient();
        var response = await client.PostAsJsonAsync("/api/auth/register", new { username = "grace", email = "grace@example.com", password = "Hopper-1906" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var user = await HomeworkApp.JsonAsync(response);
        Assert.Equal(JsonValueKind.String, user["id"]!.GetValueKind());
        Assert.True(long.TryParse(user["id"]!.GetValue<string>(), out _));
        Assert.Equal("grace", user["username"]!.GetValue<string>());
        Assert.Equal("grace@example.com", user["email"]!.GetValue<string>());
        Assert.Equal("student", user["role"]!.GetValue<string>());
        Assert.False(user.ContainsKey("passwordHash"));

        var login = await client.PostAsJsonAsync("/api/auth/login", new { username = "grace", password = "Hopper-1906" });
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        var body = await HomeworkApp.JsonAsync(login);
        Assert.Equal(3, body["token"]!.GetValue<string>().Split('.').Length);
        Assert.True(body["expiresAt"]!.GetValue<DateTimeOffset>() > DateTimeOffset.UtcNow);
        Assert.Equal(user["id"]!.GetValue<string>(), body["user"]!["id"]!.GetValue<string>());
        Assert.Equal("student", body["user"]!["role"]!.GetValue<string>());

        using var authed = App.ClientWithToken(body["token"]!.GetValue<string>());
        var me = await HomeworkApp.JsonAsync(await authed.GetAsync("/api/auth/me"));
        Assert.Equal("grace", me["username"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"username":"taken1","email":"other1@example.com","password":"Maple-river-stone-31"}""", HttpStatusCode.Conflict, "username")]
    [InlineData("""{"username":"fresh1","email":"taken1@example.com","password":"Maple-river-stone-31"}""", HttpStatusCode.Conflict, "email")]
    [InlineData("""{"username":"TAKEN1","email":"other2@example.com","password":"Maple-river-stone-31"}""", HttpStatusCode.Conflict, "username")]
    [InlineData("""{"username":"fresh2","email":"fresh2@example.com","password":"short1"}""", HttpStatusCode.BadRequest, "password")]
    [InlineData("""{"username":"fresh3","email":"fresh3@example.com","password":"onlyletters"}""", HttpStatusCode.BadRequest, "password")]
    [InlineData("""{"username":"fresh4","email":"not-an-email","password":"Maple-river-stone-31"}""", HttpStatusCode.BadRequest, "email")]
    [InlineData("""{"username":"fresh5","password":"Maple-river-stone-31"}""", HttpStatusCode.BadRequest, "email")]
    [InlineData("""{"username":5,"email":"fresh6@example.com","password":"Maple-river-stone-31"}""", HttpStatusCode.BadRequest, "username")]
    [InlineData("""[1,2]""", HttpStatusCode.BadRequest, "object")]
    public async Task Register_InvalidOrTaken_ReturnsProblemNamingTheField(string body, HttpStatusCode expected, string mentioned)
    {
        using var client = App.CreateClient();
        await client.PostAsync("/api/auth/register", HomeworkApp.RawJson("""{"username":"taken1","email":"taken1@example.com","password":"Maple-river-stone-31"}"""));

        var response = await client.PostAsync("/api/auth/register", HomeworkApp.RawJson(body));

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await HomeworkApp.JsonAsync(response);
        Assert.Contains(mentioned, problem["detail"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Login_WrongPasswordOrUnknownUser_Returns401Problem()
    {
        await App.RegisterAsync("linus", "Torvalds-91");
        using var client = App.CreateClient();

        var wrong = await client.PostAsJsonAsync("/api/auth/login", new { username = "linus", password = "wrong-password-1" });
        var unknown = await client.PostAsJsonAsync("/api/auth/login", new { username = "nobody-here", password = "Torvalds-91" });

        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal("application/problem+json", wrong.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Admin_SeededFromConfiguration_SignsInWithAdminRole()
    {
        using var client = App.CreateClient();
        var login = await client.PostAsJsonAsync("/api/auth/login", new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword });

        var body = await HomeworkApp.JsonAsync(login);
        Assert.Equal("admin", body["user"]!["role"]!.GetValue<string>());
    }

    [Fact]
    public async Task Users_ListIsAdminOnly_AndPages()
    {
        var (_, studentToken) = await App.RegisterAsync();
        using var anonymous = App.CreateClient();
        using var student = App.ClientWithToken(studentToken);
        using var admin = App.ClientWithToken(await App.AdminTokenAsync());

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/users")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await student.GetAsync("/api/users")).StatusCode);
        var page = await HomeworkApp.JsonAsync(await admin.GetAsync("/api/users?limit=1&offset=0"));
        Assert.Single(page["items"]!.AsArray());
        Assert.True(page["total"]!.GetValue<long>() >= 2);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("/api/users?limit=0")).StatusCode);
    }

    [Fact]
    public async Task Login_TooManyAttempts_Returns429WithRetryAfter()
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:LoginAttemptsPerMinute"] = "3" });
        using var client = app.CreateClient();
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 4; i++)
        {
            last = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = "wrong-password-1" });
            statuses.Add(last.StatusCode);
        }

        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests], statuses);
        Assert.True(last!.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal("application/problem+json", last.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("walt", "walt@example.com", "Password1", "10 characters")]
    [InlineData("lovelace", "ada@example.com", "Lovelace-1815!", "username")]
    [InlineData("countess", "ada.byron@example.com", "ada.byron-1815", "email")]
    [InlineData("hopper", "grace@example.com", "password123", "common")]
    [InlineData("turing", "alan@example.com", "QwertyUiop1", "common")]
    public async Task Register_WeakPassword_Is400_NamingTheRule(string username, string email, string password, string mentioned)
    {
        using var client = App.CreateClient();

        var response = await client.PostAsJsonAsync("/api/auth/register", new { username, email, password });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var detail = (await HomeworkApp.JsonAsync(response))["detail"]!.GetValue<string>();
        Assert.Contains("password", detail, StringComparison.Ordinal);
        Assert.Contains(mentioned, detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_201_HasNoLocationToARouteThatDoesNotExist()
    {
        using var client = App.CreateClient();

        var response = await client.PostAsJsonAsync("/api/auth/register", new { username = "margaret", email = "margaret@example.com", password = "Apollo-guidance-1969" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        if (response.Headers.Location is { } location)
        {
            using var admin = App.ClientWithToken(await App.AdminTokenAsync());
            Assert.NotEqual(HttpStatusCode.NotFound, (await admin.GetAsync(location)).StatusCode);
        }
    }
}
