namespace TokenMeter;

/// <summary>
/// The app's accounts, as the admin endpoints and exports need them: usernames and emails for a
/// page of user ids at once, and whether an id names an account. Register one as a service; with
/// none registered, usernames and emails are null.
/// </summary>
public interface IUserDirectory
{
    /// <summary>Looks up several users in one go (one page of a table, one chunk of an export).</summary>
    /// <param name="userIds">Distinct user ids.</param>
    /// <param name="cancellationToken">Cancels the lookup.</param>
    /// <returns>The users found, keyed by id; ids without an account are left out.</returns>
    ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default);

    /// <summary>Whether <paramref name="userId"/> names an account.</summary>
    /// <param name="userId">The user id.</param>
    /// <param name="cancellationToken">Cancels the lookup.</param>
    /// <returns>True when the account exists.</returns>
    ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default);
}

/// <summary>A user as the directory knows it.</summary>
/// <param name="UserId">The user id.</param>
/// <param name="Username">The username, if any.</param>
/// <param name="Email">The email address, if any.</param>
public sealed record UserDirectoryEntry(string UserId, string? Username, string? Email);
