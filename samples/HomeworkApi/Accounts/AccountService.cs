using System.Net.Mail;
using System.Security.Claims;
using HomeworkApi.Hosting;
using Microsoft.AspNetCore.Identity;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HomeworkApi.Accounts;

/// <summary>Registration, sign-in and JWT issuance over an <see cref="IAccountStore"/>.</summary>
internal sealed class AccountService(IAccountStore store, HomeworkSettings settings, TimeProvider timeProvider)
{
    public const int MinPasswordLength = 10;
    public const int MaxPasswordLength = 128;

    private static readonly PasswordHasher<Account> Hasher = new();

    // Verified when the username is unknown, so that a miss costs as much time as a hit.
    private static readonly Lazy<string> DummyHash = new(() => Hasher.HashPassword(null!, "not-a-real-password-0"));

    public IAccountStore Store => store;

    /// <summary>Checks a username; returns a sentence for the caller or null when it is fine.</summary>
    public static string? CheckUsername(string username)
    {
        if (username.Length is < 3 or > 32)
        {
            return "username must be 3 to 32 characters long.";
        }

        return username.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')
            ? null
            : "username may contain only letters, digits, '.', '_' and '-'.";
    }

    /// <summary>Checks an email address; returns a sentence for the caller or null when it is fine.</summary>
    public static string? CheckEmail(string email)
    {
        if (email.Length > 254 || !MailAddress.TryCreate(email, out var parsed) || parsed.Address != email || !parsed.Host.Contains('.', StringComparison.Ordinal))
        {
            return "email must be a valid address such as ada@example.com.";
        }

        return null;
    }

    /// <summary>
    /// Checks a password's strength: at least 10 characters, letters mixed with digits or symbols, not
    /// containing the username or the email's local part, and not one of the common passwords shipped
    /// with the sample (<c>Accounts/common-passwords.txt</c>). Returns a sentence for the caller, or null.
    /// </summary>
    public static string? CheckPassword(string password, string username, string email)
    {
        if (password.Length < MinPasswordLength)
        {
            return $"password is too weak: use at least {MinPasswordLength} characters.";
        }

        if (password.Length > MaxPasswordLength)
        {
            return $"password is too long: use at most {MaxPasswordLength} characters.";
        }

        if (!password.Any(char.IsLetter) || !password.Any(c => !char.IsLetter(c)))
        {
            return "password is too weak: mix letters with digits or symbols.";
        }

        var localPart = email.Split('@')[0];
        if (password.Contains(username, StringComparison.OrdinalIgnoreCase)
            || (localPart.Length >= 3 && password.Contains(localPart, StringComparison.OrdinalIgnoreCase)))
        {
            return "password is too weak: it must not contain your username or email address.";
        }

        if (CommonPasswords.Value.Contains(password))
        {
            return "password is too weak: it is one of the most common passwords; choose another.";
        }

        return null;
    }

    private static readonly Lazy<HashSet<string>> CommonPasswords = new(() =>
    {
        using var stream = typeof(AccountService).Assembly.GetManifestResourceStream("HomeworkApi.Accounts.common-passwords.txt")
            ?? throw new InvalidOperationException("The embedded list of common passwords is missing.");
        using var reader = new StreamReader(stream);
        var set = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0 && !line.StartsWith('#'))
            {
                set.Add(line.Trim());
            }
        }

        return set;
    });

    public async ValueTask<(Account? Account, CreateAccountError Error)> RegisterAsync(string username, string email, string password, string role, CancellationToken cancellationToken)
    {
        var hash = Hasher.HashPassword(null!, password);
        return await store.CreateAsync(username, email, hash, role, cancellationToken);
    }

    /// <summary>The account when the password matches, else null.</summary>
    public async ValueTask<Account?> VerifyAsync(string username, string password, CancellationToken cancellationToken)
    {
        var account = await store.FindByUsernameAsync(username, cancellationToken);
        if (account is null)
        {
            Hasher.VerifyHashedPassword(null!, DummyHash.Value, password);
            return null;
        }

        var result = Hasher.VerifyHashedPassword(account, account.PasswordHash, password);
        if (result == PasswordVerificationResult.Failed)
        {
            return null;
        }

        if (result == PasswordVerificationResult.SuccessRehashNeeded)
        {
            account = account with { PasswordHash = Hasher.HashPassword(account, password) };
            await store.UpdateAsync(account, cancellationToken);
        }

        return account;
    }

    /// <summary>Creates the account, or resets its password (and makes it an admin) when it exists.</summary>
    public async ValueTask<(Account Account, bool Created)> EnsureAdminAsync(string username, string email, string password, CancellationToken cancellationToken)
    {
        var existing = await store.FindByUsernameAsync(username, cancellationToken);
        if (existing is not null)
        {
            var updated = existing with { PasswordHash = Hasher.HashPassword(existing, password), Role = Roles.Admin, Email = email };
            await store.UpdateAsync(updated, cancellationToken);
            return (updated, false);
        }

        var (account, error) = await RegisterAsync(username, email, password, Roles.Admin, cancellationToken);
        if (account is null)
        {
            throw new InvalidOperationException(error == CreateAccountError.EmailTaken
                ? $"Admin:Email '{email}' already belongs to another account; choose another Admin:Email."
                : $"The admin account '{username}' could not be created.");
        }

        return (account, true);
    }

    /// <summary>A signed JWT for the account and when it expires.</summary>
    public (string Token, DateTimeOffset ExpiresAt) IssueToken(Account account)
    {
        var now = timeProvider.GetUtcNow();
        var expires = now + settings.TokenLifetime;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = settings.JwtIssuer,
            Audience = settings.JwtAudience,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = expires.UtcDateTime,
            Subject = new ClaimsIdentity(
            [
                new Claim(JwtRegisteredClaimNames.Sub, account.IdText),
                new Claim(JwtRegisteredClaimNames.UniqueName, account.Username),
                new Claim(JwtRegisteredClaimNames.Email, account.Email),
                new Claim("role", account.Role),
            ]),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(settings.SigningKey), SecurityAlgorithms.HmacSha256),
        };
        return (new JsonWebTokenHandler().CreateToken(descriptor), expires);
    }
}
