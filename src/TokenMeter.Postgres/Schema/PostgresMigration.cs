using System.Security.Cryptography;
using System.Text;

namespace TokenMeter.Postgres.Schema;

/// <summary>One numbered SQL migration embedded in the assembly.</summary>
/// <param name="Version">Its number (from the file name, e.g. 1 for <c>0001_initial.sql</c>).</param>
/// <param name="Name">The file name.</param>
/// <param name="Template">The SQL with <c>{schema}</c> and <c>{schema_name}</c> placeholders.</param>
internal sealed record PostgresMigration(int Version, string Name, string Template)
{
    /// <summary>SHA-256 of the template (independent of the schema it is applied to), lowercase hex.</summary>
    public string Checksum { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Template.ReplaceLineEndings("\n"))));

    /// <summary>The SQL for one schema.</summary>
    /// <param name="schema">A validated schema name.</param>
    /// <returns>Executable SQL.</returns>
    public string Render(string schema) => PostgresIdentifiers.Render(Template, schema);

    /// <summary>Every migration in the assembly, in order.</summary>
    public static IReadOnlyList<PostgresMigration> All { get; } = Load();

    /// <summary>The highest migration number in the assembly.</summary>
    public static int Latest { get; } = All[^1].Version;

    private static List<PostgresMigration> Load()
    {
        var assembly = typeof(PostgresMigration).Assembly;
        const string Prefix = "TokenMeter.Postgres.Migrations.";
        var list = new List<PostgresMigration>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal)))
        {
            var name = resource[Prefix.Length..];
            var version = int.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), System.Globalization.CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            list.Add(new PostgresMigration(version, name, reader.ReadToEnd()));
        }

        list.Sort((a, b) => a.Version.CompareTo(b.Version));
        // 1, 2, 3, ... each number once and none missing, so a misnumbered migration fails every test run.
        for (var i = 0; i < list.Count; i++)
        {
            if (list[i].Version != i + 1)
            {
                throw new InvalidOperationException($"TokenMeter.Postgres migrations must be numbered 1, 2, 3, ... without gaps, each number once; found {list[i].Name}.");
            }
        }

        return list;
    }
}
