using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Security.Claims;
using HomeworkApi.Hosting;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace HomeworkApi.Accounts;

/// <summary>
/// A bearer token proves who signed in, not what they may do now: on each request the account's role
/// is read from the account store (cached per account for <c>Homework:Auth:RoleCacheSeconds</c>,
/// default 30, at most 60), and a token whose account is gone is refused. Deleting or demoting an
/// account through this instance applies at once; through another instance, within the cache time.
/// A role past half its cache time is read again in the background while the cached one (still within
/// its time) serves, so a busy user's requests never wait for the store; only a role past its whole
/// cache time (or never read) is read on the request. While the store cannot be reached, a role read
/// before keeps serving; with none, the request fails with 503 (through <see cref="UseStoreFailureOfSignIn"/>
/// and the app's exception handler).
/// </summary>
internal sealed class AccountRoleResolver(IAccountStore store, TimeProvider timeProvider, HomeworkSettings settings, ILogger<AccountRoleResolver> logger)
{
    /// <summary>Accounts whose role is kept; past it the cache starts over, so memory stays bounded.</summary>
    private const int MaxCachedAccounts = 100_000;

    private readonly ConcurrentDictionary<long, Entry> _cache = new();

    /// <summary>Where <see cref="ApplyAsync"/> leaves the store's failure for <see cref="UseStoreFailureOfSignIn"/>.</summary>
    private static readonly object StoreFailureKey = new();

    /// <summary>
    /// After authentication: a request whose token could not be checked against an unreachable account
    /// store fails with the store's exception, which the exception handler answers with 503 and Retry-After.
    /// </summary>
    public static IApplicationBuilder UseStoreFailureOfSignIn(IApplicationBuilder app) => app.Use((context, next) =>
    {
        if (context.Items[StoreFailureKey] is Exception failure)
        {
            ExceptionDispatchInfo.Throw(failure);
        }

        return next(context);
    });

    /// <summary>The <see cref="JwtBearerEvents.OnTokenValidated"/> step: the role claim becomes the store's, or the token is refused.</summary>
    public async Task ApplyAsync(TokenValidatedContext context)
    {
        var identity = context.Principal?.Identity as ClaimsIdentity;
        var sub = identity?.FindFirst("sub")?.Value;
        if (identity is null || !AccountUserDirectory.TryParseId(sub, out var id))
        {
            context.Fail("The token names no account.");
            return;
        }

        string? role;
        try
        {
            role = await GetRoleAsync(id, context.HttpContext.RequestAborted);
        }
        catch (Exception ex) when (TokenMeter.AspNetCore.StoreUnavailableProblem.IsStoreUnavailable(ex))
        {
            // No role read before and the store cannot be reached: the request answers 503 (see
            // UseStoreFailureOfSignIn), not a 401 that would send a valid user to sign in again.
            context.HttpContext.Items[StoreFailureKey] = ex;
            context.Fail(ex);
            return;
        }

        if (role is null)
        {
            context.Fail("The account of this token no longer exists.");
            return;
        }

        // The token's role claim already says it (the common case): nothing to change.
        Claim? only = null;
        var roleClaims = 0;
        foreach (var claim in identity.Claims)
        {
            if (claim.Type == "role")
            {
                only = claim;
                roleClaims++;
            }
        }

        if (roleClaims == 1 && only!.Value == role)
        {
            return;
        }

        foreach (var claim in identity.FindAll("role").ToList())
        {
            identity.RemoveClaim(claim);
        }

        identity.AddClaim(new Claim("role", role));
    }

    /// <summary>The account's role now, or null when it has no account.</summary>
    public async ValueTask<string?> GetRoleAsync(long id, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetTimestamp();
        _cache.TryGetValue(id, out var cached);
        if (cached is not null)
        {
            var age = timeProvider.GetElapsedTime(cached.ReadAt, now);
            if (age < settings.RoleCacheDuration)
            {
                if (age >= settings.RoleCacheDuration / 2 && Interlocked.Exchange(ref cached.Refreshing, 1) == 0)
                {
                    _ = RefreshAsync(id, cached);
                }

                return cached.Role;
            }
        }

        return await ReadAsync(id, cached, now, cancellationToken);
    }

    /// <summary>Reads the role again for the next requests (one read per account at a time); a failure keeps the cached role until it expires.</summary>
    private async Task RefreshAsync(long id, Entry cached)
    {
        try
        {
            await ReadAsync(id, cached, timeProvider.GetTimestamp(), CancellationToken.None);
        }
        catch (Exception ex)
        {
            Volatile.Write(ref cached.Refreshing, 0);
            Diagnostics.Log.RoleRefreshFailed(logger, ex, id);
        }
    }

    private async ValueTask<string?> ReadAsync(long id, Entry? cached, long now, CancellationToken cancellationToken)
    {
        Account? account;
        try
        {
            account = await store.FindByIdAsync(id, cancellationToken);
        }
        catch (Exception ex) when (cached is not null && TokenMeter.AspNetCore.StoreUnavailableProblem.IsStoreUnavailable(ex))
        {
            return cached.Role;
        }

        if (_cache.Count >= MaxCachedAccounts)
        {
            _cache.Clear();
        }

        // A Forget (this instance changed the account) while the read was under way wins over it.
        if (cached is null || _cache.TryGetValue(id, out var current) && ReferenceEquals(current, cached))
        {
            _cache[id] = new Entry(account?.Role, now);
        }

        return account?.Role;
    }

    /// <summary>Forgets the cached role of <paramref name="id"/> (after this instance changed or deleted the account).</summary>
    public void Forget(long id) => _cache.TryRemove(id, out _);

    private sealed class Entry(string? role, long readAt)
    {
        /// <summary>1 while a background read of this entry's account is under way.</summary>
        public int Refreshing;

        public string? Role { get; } = role;

        public long ReadAt { get; } = readAt;
    }
}
