namespace HomeworkApi.Accounts;

/// <summary>Where accounts are kept: PostgreSQL when a connection string is configured, memory otherwise.</summary>
internal interface IAccountStore
{
    /// <summary>Creates the store's tables if needed (idempotent, safe with several instances).</summary>
    ValueTask InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Creates an account; the id is assigned by the store.</summary>
    ValueTask<(Account? Account, CreateAccountError Error)> CreateAsync(string username, string email, string passwordHash, string role, CancellationToken cancellationToken);

    /// <summary>Finds an account by username (case-insensitive).</summary>
    ValueTask<Account?> FindByUsernameAsync(string username, CancellationToken cancellationToken);

    /// <summary>Finds an account by id.</summary>
    ValueTask<Account?> FindByIdAsync(long id, CancellationToken cancellationToken);

    /// <summary>Finds several accounts by id.</summary>
    ValueTask<IReadOnlyList<Account>> FindByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken cancellationToken);

    /// <summary>Replaces an account's password hash, role and email.</summary>
    ValueTask UpdateAsync(Account account, CancellationToken cancellationToken);

    /// <summary>Deletes an account; false when there was none. Usage records keep its id.</summary>
    ValueTask<bool> DeleteAsync(long id, CancellationToken cancellationToken);

    /// <summary>Accounts ordered by id, with an optional case-insensitive search on username and email.</summary>
    ValueTask<AccountPage> ListAsync(int limit, int offset, string? search, CancellationToken cancellationToken);
}
