using System.Security.Cryptography;
using HomeworkApi.Diagnostics;
using TokenMeter.AspNetCore;

namespace HomeworkApi.Accounts;

/// <summary>
/// At start-up: installs the account tables, then creates the configured admin account (or resets
/// its password). With no <c>Admin:Password</c> and no such account yet, it creates one with a
/// generated password and logs that password once, so a fresh install has a way into the portal.
/// A bad <c>Admin:*</c> setting fails the start. PostgreSQL unreachable does not: the app starts
/// (routes that need the database answer 503 meanwhile), and the tables and the admin account are set
/// up in the background as soon as it answers.
/// </summary>
internal sealed class AdminSeeder(AccountService accounts, IConfiguration configuration, ILogger<AdminSeeder> logger) : IHostedService
{
    /// <summary>Wait between attempts while the account store cannot be reached.</summary>
    internal static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(2);

    // A signal rather than a CancellationTokenSource: the host may be stopped after its container disposed this service.
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _retrying;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
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

        if (!string.IsNullOrEmpty(password) && AccountService.CheckPassword(password, username, email) is { } badPassword)
        {
            throw new InvalidOperationException("Admin:Password is not usable: " + badPassword);
        }

        try
        {
            // The first attempt on the start: with the database up, the admin can sign in once the app listens.
            await SeedAsync(username, email, password, cancellationToken);
        }
        catch (Exception ex) when (StoreUnavailableProblem.IsStoreUnavailable(ex) && !cancellationToken.IsCancellationRequested)
        {
            Log.AdminSeedDeferred(logger, ex, username, (int)RetryDelay.TotalSeconds);
            _retrying = Task.Run(() => RetryAsync(username, email, password), CancellationToken.None);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopped.TrySetResult();
        if (_retrying is not null)
        {
            await _retrying.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task RetryAsync(string username, string email, string? password)
    {
        while (true)
        {
            if (await Task.WhenAny(Task.Delay(RetryDelay), _stopped.Task) == _stopped.Task)
            {
                return;
            }

            try
            {
                await SeedAsync(username, email, password, CancellationToken.None);
                return;
            }
            catch (Exception ex) when (StoreUnavailableProblem.IsStoreUnavailable(ex))
            {
                // Still down: the start-up line said so once; try again.
            }
            catch (Exception ex)
            {
                Log.AdminSeedFailed(logger, ex, username);
                return;
            }
        }
    }

    private async Task SeedAsync(string username, string email, string? password, CancellationToken cancellationToken)
    {
        await accounts.Store.InitializeAsync(cancellationToken);
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

        var (_, created) = await accounts.EnsureAdminAsync(username, email, password, cancellationToken);
        Log.AdminSeeded(logger, username, created ? "created" : "password reset");
    }
}
