using System.Globalization;
using TokenMeter;

namespace HomeworkApi.Accounts;

/// <summary>Usernames and emails for the admin usage API, from the sample's accounts.</summary>
internal sealed class AccountUserDirectory(IAccountStore store) : IUserDirectory
{
    public async ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default)
    {
        var ids = new List<long>(userIds.Count);
        foreach (var userId in userIds)
        {
            if (TryParseId(userId, out var id))
            {
                ids.Add(id);
            }
        }

        var accounts = await store.FindByIdsAsync(ids, cancellationToken);
        return accounts.ToDictionary(a => a.IdText, a => new UserDirectoryEntry(a.IdText, a.Username, a.Email), StringComparer.Ordinal);
    }

    public async ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default) =>
        TryParseId(userId, out var id) && await store.FindByIdAsync(id, cancellationToken) is not null;

    /// <summary>Account ids are positive integers written without sign, leading zeros or spaces.</summary>
    public static bool TryParseId(string? text, out long id)
    {
        id = 0;
        return text is { Length: > 0 and <= 19 }
            && text[0] != '0'
            && text.All(char.IsAsciiDigit)
            && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out id);
    }
}
