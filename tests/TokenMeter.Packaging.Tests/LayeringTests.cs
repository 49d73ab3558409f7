using System.Text.RegularExpressions;

namespace TokenMeter.Packaging.Tests;

/// <summary>The folders of every package form layers: no folder imports one that imports it back.</summary>
public sealed partial class LayeringTests
{
    [Fact]
    public void No_folder_imports_a_folder_that_imports_it_back()
    {
        var imports = FolderImports();
        Assert.True(imports.Count >= 20, $"expected the folders of every package, found {imports.Count}");

        var circles = new List<string>();
        foreach (var (folder, imported) in imports)
        {
            foreach (var other in imported)
            {
                if (string.CompareOrdinal(folder, other) < 0 && imports.TryGetValue(other, out var back) && back.Contains(folder))
                {
                    circles.Add($"{folder} <-> {other}");
                }
            }
        }

        Assert.Empty(circles);
    }

    [Fact]
    public void Builder_and_endpoint_extensions_live_where_dotnet_users_look()
    {
        foreach (var file in SourceFiles())
        {
            var text = File.ReadAllText(file);
            if (!text.Contains("public static class", StringComparison.Ordinal))
            {
                continue; // internal plumbing, not what users call
            }

            foreach (Match m in ExtensionMethod().Matches(text))
            {
                var expected = m.Groups["name"].Value.StartsWith("Add", StringComparison.Ordinal) && m.Groups["target"].Value is "ITokenMeterBuilder" or "IServiceCollection"
                    ? "Microsoft.Extensions.DependencyInjection"
                    : m.Groups["target"].Value is "IEndpointRouteBuilder" or "TBuilder" ? "Microsoft.AspNetCore.Builder" : null;
                if (expected is not null)
                {
                    Assert.True(text.Contains($"namespace {expected};", StringComparison.Ordinal), $"{m.Groups["name"].Value} in {Path.GetFileName(file)} belongs in namespace {expected}");
                }
            }
        }
    }

    /// <summary>
    /// Each folder namespace of src/ (e.g. <c>TokenMeter.Budgets</c>, <c>TokenMeter.AspNetCore.Endpoints</c>) and
    /// the folder namespaces its files import, by <c>using</c> or by a qualified name. A package's root
    /// namespace (its public face and registrations) and the Microsoft namespaces of its extension methods
    /// are not folders: they compose the folders.
    /// </summary>
    private static Dictionary<string, HashSet<string>> FolderImports()
    {
        var roots = Directory.GetDirectories(Path.Combine(PackedLibraries.RepoRoot, "src")).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal);
        var imports = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var file in SourceFiles())
        {
            var text = File.ReadAllText(file);
            var declared = Namespace().Match(text);
            if (!declared.Success || !IsFolder(declared.Groups[1].Value))
            {
                continue;
            }

            var folder = declared.Groups[1].Value;
            if (!imports.TryGetValue(folder, out var set))
            {
                imports[folder] = set = new HashSet<string>(StringComparer.Ordinal);
            }

            foreach (var name in Using().Matches(text).Select(m => m.Groups[1].Value).Concat(Qualified().Matches(text).Select(m => m.Groups[1].Value)))
            {
                if (name != folder && IsFolder(name))
                {
                    set.Add(name);
                }
            }
        }

        return imports;

        bool IsFolder(string ns) => ns.StartsWith("TokenMeter.", StringComparison.Ordinal) && !roots.Contains(ns);
    }

    private static IEnumerable<string> SourceFiles() =>
        Directory.EnumerateFiles(Path.Combine(PackedLibraries.RepoRoot, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    [GeneratedRegex(@"^namespace ([\w.]+);", RegexOptions.Multiline)]
    private static partial Regex Namespace();

    [GeneratedRegex(@"^using (TokenMeter[\w.]*);", RegexOptions.Multiline)]
    private static partial Regex Using();

    [GeneratedRegex(@"\b(TokenMeter(?:\.[A-Z]\w*)+)\.[A-Z]")]
    private static partial Regex Qualified();

    [GeneratedRegex(@"public static \S+ (?<name>(Add|Map|With|Use)\w*)(<\w+>)?\(this (?<target>\w+)")]
    private static partial Regex ExtensionMethod();
}
