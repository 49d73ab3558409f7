using System.ComponentModel;
using HomeworkApi.Hosting;

namespace HomeworkApi.Accounts;

/// <summary>CONTRACT §2: register and log in.</summary>
internal static class AuthEndpoints
{
    public static void MapAuthEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/auth").WithTags("Accounts").RequireCors(HomeworkCors.PolicyName);
        group.MapPost("/register", RegisterAsync)
            .WithSummary("Creates a student account.")
            .RequireRateLimiting(AccountThrottles.RegisterPolicy)
            .WithJsonBody<RegisterBody>()
            .Produces<UserDto>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        group.MapPost("/login", LoginAsync)
            .WithSummary("Signs in and returns a bearer token.")
            .RequireRateLimiting(AccountThrottles.LoginPolicy)
            .WithJsonBody<LoginBody>()
            .Produces<LoginResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
    }

    private static async Task<IResult> RegisterAsync(HttpRequest request, AccountService accounts, CancellationToken cancellationToken)
    {
        var (body, error) = await Problems.ReadJsonObjectAsync(request, cancellationToken);
        if (error is not null)
        {
            return error;
        }

        var username = Problems.RequiredString(body, "username", out var usernameError)?.Trim();
        var email = Problems.RequiredString(body, "email", out var emailError)?.Trim();
        var password = Problems.RequiredString(body, "password", out var passwordError);
        var problem = usernameError ?? emailError ?? passwordError
            ?? AccountService.CheckUsername(username!) ?? AccountService.CheckEmail(email!) ?? AccountService.CheckPassword(password!, username!, email!);
        if (problem is not null)
        {
            return Problems.BadRequest(problem);
        }

        var (account, createError) = await accounts.RegisterAsync(username!, email!, password!, Roles.Student, cancellationToken);
        return createError switch
        {
            CreateAccountError.UsernameTaken => Problems.Conflict($"The username '{username}' is already taken."),
            CreateAccountError.EmailTaken => Problems.Conflict($"The email '{email}' already belongs to an account."),
            _ => TypedResults.Json(UserDto.From(account!), statusCode: StatusCodes.Status201Created),
        };
    }

    private static async Task<IResult> LoginAsync(HttpRequest request, AccountService accounts, SignInAccountLimiter accountLimiter, CancellationToken cancellationToken)
    {
        var (body, error) = await Problems.ReadJsonObjectAsync(request, cancellationToken);
        if (error is not null)
        {
            return error;
        }

        var username = Problems.RequiredString(body, "username", out var usernameError)?.Trim();
        var password = Problems.RequiredString(body, "password", out var passwordError);
        if ((usernameError ?? passwordError) is { } problem)
        {
            return Problems.BadRequest(problem);
        }

        if (accountLimiter.TryAttempt(username!) is { } wait)
        {
            return AccountThrottles.Refuse(wait, "Too many sign-in attempts for this account; wait a minute and try again.");
        }

        var account = await accounts.VerifyAsync(username!, password!, cancellationToken);
        if (account is null)
        {
            return Problems.Unauthorized("The username or password is wrong.");
        }

        var (token, expiresAt) = accounts.IssueToken(account);
        return TypedResults.Ok(new LoginResponse(token, expiresAt, UserDto.From(account)));
    }
}

/// <summary>An account as the API shows it; the id is a string.</summary>
internal sealed record UserDto(string Id, string Username, string Email, string Role)
{
    public static UserDto From(Account account) => new(account.IdText, account.Username, account.Email, account.Role);
}

/// <summary>The answer to a successful login.</summary>
internal sealed record LoginResponse(string Token, DateTimeOffset ExpiresAt, UserDto User);

/// <summary>The body of <c>POST /api/auth/register</c> (read by hand so each 400 names the field).</summary>
internal sealed record RegisterBody(
    [property: Description("3 to 32 letters, digits, '.', '_' or '-'.")] string Username,
    [property: Description("The account's email address.")] string Email,
    [property: Description("At least 10 characters mixing letters with digits or symbols; not containing the username or the email's name; not a common password.")] string Password);

/// <summary>The body of <c>POST /api/auth/login</c>.</summary>
internal sealed record LoginBody(string Username, string Password);
