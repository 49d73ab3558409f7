using System.Security.Cryptography;
using HomeworkApi.Diagnostics;

namespace HomeworkApi.Accounts;

/// <summary>
/// At start-up: installs the account tables, then creates the configured admin account (or resets
/// its password). With no <c>Admin:Password</c> and no such account yet, it creates one with a
/// generated password and logs that password once, so a fresh install has a way into the portal.
/// </summary>
internal sealed class AdminSeeder(AccountService accounts, IConfiguration configuration, ILogger<AdminSeeder> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await accounts.Store.InitializeAsync(cancellationToken);

        var username = configuration["Admin:Username"] is { Length: > 0 } u ? u.Trim() : "admin";
        var email = configuration["Admin:Email"] is { Length: > 0 } e ? e.Trim() : $"{username}@example.com";
        var password = configuration["Admin:Password"];

        if (AccountService.CheckUsername(username) is { } badUsername)
        {
            throw new InvalidOperationException("Admin:Username is not usable: " + badUsername);
        }

        if (AccountService.CheckEmail(email) is { } badEmail)
        {
            throw new InvalidOperationException("Admin:Email is not usable: " + badEmail);
        }

        if (string.IsNullOrEmpty(password))
        {
            if (await accounts.Store.FindByUsernameAsync(username, cancellationToken) is not null)
            {
                return;
            }

            var generated = Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('+', 'x').Replace('/', 'y') + "7";
            await accounts.EnsureAdminAsync(username, email, generated, cancellationToken);
            Log.AdminPasswordGenerated(logger, username, generated);
            return;
        }

        if (AccountService.CheckPassword(password, username, email) is { } badPassword)
        {
            throw new InvalidOperationException("Admin:Password is not usable: " + badPassword);
        }

        var (_, created) = await accounts.EnsureAdminAsync(username, email, password, cancellationToken);
        Log.AdminSeeded(logger, username, created ? "created" : "password reset");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
