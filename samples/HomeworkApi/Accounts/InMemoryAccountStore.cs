namespace HomeworkApi.Accounts;

/// <summary>Accounts in memory: gone when the process stops. Used when no connection string is configured.</summary>
internal sealed class InMemoryAccountStore(TimeProvider timeProvider) : IAccountStore
{
    private readonly Lock _gate = new();
    private readonly List<Account> _accounts = [];
    private long _nextId;

    public ValueTask InitializeAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<(Account? Account, CreateAccountError Error)> CreateAsync(string username, string email, string passwordHash, string role, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_accounts.Any(a => string.Equals(a.Username, username, StringComparison.OrdinalIgnoreCase)))
            {
                return ValueTask.FromResult<(Account?, CreateAccountError)>((null, CreateAccountError.UsernameTaken));
            }

            if (_accounts.Any(a => string.Equals(a.Email, email, StringComparison.OrdinalIgnoreCase)))
            {
                return ValueTask.FromResult<(Account?, CreateAccountError)>((null, CreateAccountError.EmailTaken));
            }

            var account = new Account(++_nextId, username, email, passwordHash, role, timeProvider.GetUtcNow());
            _accounts.Add(account);
            return ValueTask.FromResult<(Account?, CreateAccountError)>((account, CreateAccountError.None));
        }
    }

    public ValueTask<Account?> FindByUsernameAsync(string username, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return ValueTask.FromResult(_accounts.FirstOrDefault(a => string.Equals(a.Username, username, StringComparison.OrdinalIgnoreCase)));
        }
    }

    public ValueTask<Account?> FindByIdAsync(long id, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return ValueTask.FromResult(_accounts.FirstOrDefault(a => a.Id == id));
        }
    }

    public ValueTask<IReadOnlyList<Account>> FindByIdsAsync(IReadOnlyCollection<long> ids, CancellationToken cancellationToken)
    {
        var wanted = ids.ToHashSet();
        lock (_gate)
        {
            return ValueTask.FromResult<IReadOnlyList<Account>>(_accounts.Where(a => wanted.Contains(a.Id)).ToList());
        }
    }

    public ValueTask UpdateAsync(Account account, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var index = _accounts.FindIndex(a => a.Id == account.Id);
            if (index >= 0)
            {
                _accounts[index] = account;
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<bool> DeleteAsync(long id, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return ValueTask.FromResult(_accounts.RemoveAll(a => a.Id == id) > 0);
        }
    }

    public ValueTask<AccountPage> ListAsync(int limit, int offset, string? search, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var matches = _accounts
                .Where(a => string.IsNullOrEmpty(search)
                    || a.Username.Contains(search, StringComparison.OrdinalIgnoreCase)
                    || a.Email.Contains(search, StringComparison.OrdinalIgnoreCase))
                .OrderBy(a => a.Id)
                .ToList();
            return ValueTask.FromResult(new AccountPage(matches.Skip(offset).Take(limit).ToList(), matches.Count));
        }
    }
}
