namespace HomeworkApi.Accounts;

/// <summary>A user of the homework app. Ids are numbers in storage and strings in JSON.</summary>
internal sealed record Account(long Id, string Username, string Email, string PasswordHash, string Role, DateTimeOffset CreatedAt)
{
    public string IdText => Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The two roles of CONTRACT §2.</summary>
internal static class Roles
{
    public const string Student = "student";
    public const string Admin = "admin";
}

/// <summary>A page of accounts for the admin portal's Users tab.</summary>
internal sealed record AccountPage(IReadOnlyList<Account> Items, long Total);

/// <summary>Why an account could not be created.</summary>
internal enum CreateAccountError
{
    None,
    UsernameTaken,
    EmailTaken,
}
