using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace TokenMeter.Postgres.Schema;

/// <summary>Validation and quoting of the one identifier that is not a parameter: the schema name.</summary>
internal static partial class PostgresIdentifiers
{
    /// <summary>Throws unless <paramref name="schema"/> is a plain identifier.</summary>
    /// <param name="schema">The schema name.</param>
    /// <returns>The name.</returns>
    public static string ValidateSchema(string schema)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(schema);
        if (!SchemaRegex().IsMatch(schema))
        {
            throw new ArgumentException($"'{schema}' is not a valid schema name: use letters, digits and underscores, not starting with a digit, at most 63 characters.", nameof(schema));
        }

        return schema;
    }

    /// <summary>The schema as a quoted identifier, e.g. <c>"public"</c>.</summary>
    /// <param name="schema">A validated schema name.</param>
    /// <returns>The quoted identifier.</returns>
    public static string Quote(string schema) => "\"" + ValidateSchema(schema) + "\"";

    /// <summary>Replaces <c>{schema}</c> with the quoted identifier and <c>{schema_name}</c> with a string literal.</summary>
    /// <param name="template">SQL with placeholders.</param>
    /// <param name="schema">A validated schema name.</param>
    /// <returns>The SQL.</returns>
    public static string Render(string template, string schema) =>
        template.Replace("{schema_name}", "'" + ValidateSchema(schema) + "'", StringComparison.Ordinal)
                .Replace("{schema}", Quote(schema), StringComparison.Ordinal);

    /// <summary>Key of the advisory lock that serializes migrations of one schema across instances.</summary>
    /// <param name="schema">The schema name.</param>
    /// <returns>A stable 64-bit key.</returns>
    public static long MigrationLockKey(string schema) =>
        BitConverter.ToInt64(SHA256.HashData(Encoding.UTF8.GetBytes("tokenmeter.migrations." + schema)), 0);

    /// <summary>The SQL key of the advisory lock one fold of a schema holds at a time ($1: the schema name); upgrades take it too.</summary>
    public const string FoldLockKey = "hashtext('tokenmeter.fold.' || $1)";

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    private static partial Regex SchemaRegex();
}
