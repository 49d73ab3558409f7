using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text.Json;
using System.Xml.Linq;

namespace TokenMeter.Packaging.Tests;

/// <summary>Packs every library under src/ once per test run into a temporary folder.</summary>
public sealed class PackedLibraries : IAsyncLifetime
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public string Folder { get; } = Path.Combine(Path.GetTempPath(), "tokenmeter-pack-" + Guid.NewGuid().ToString("N"));

    public IReadOnlyList<string> Projects { get; } = Directory.GetDirectories(Path.Combine(RepoRoot, "src"))
        .Select(d => Path.Combine(d, Path.GetFileName(d) + ".csproj"))
        .Where(File.Exists)
        .OrderBy(p => p, StringComparer.Ordinal)
        .ToArray();

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Folder);
        var configuration = typeof(PackedLibraries).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        foreach (var project in Projects)
        {
            await Dotnet.RunAsync(RepoRoot, TimeSpan.FromMinutes(3), "pack", project, "-c", configuration, "--no-build", "--nologo", "-o", Folder);
        }
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Folder, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>The .nupkg of one project (not its .snupkg).</summary>
    public string PackageOf(string project)
    {
        var id = PackageIdOf(project);
        var matches = Directory.GetFiles(Folder, id + ".*.nupkg")
            .Where(f => char.IsDigit(Path.GetFileName(f)[id.Length + 1]))
            .ToArray();
        Assert.True(matches.Length == 1, $"expected one {id}.<version>.nupkg in {Folder}, found {matches.Length}");
        return matches[0];
    }

    public static string PackageIdOf(string project) => "Meterworks." + Path.GetFileNameWithoutExtension(project);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TokenMeter.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("TokenMeter.sln not found above " + AppContext.BaseDirectory);
    }
}

public sealed class PackageTests(PackedLibraries packed) : IClassFixture<PackedLibraries>
{
    /// <summary>A screen of text: a README shorter than this leaves the package's NuGet page nearly empty.</summary>
    private const int ScreenLines = 40;

    public static TheoryData<string> Libraries()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Path.Combine(PackedLibraries.RepoRoot, "src")).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(dir));
        }

        return data;
    }

    [Fact]
    public void Every_library_under_src_is_packed_with_the_Meterworks_id()
    {
        Assert.True(packed.Projects.Count >= 3, "expected at least TokenMeter, TokenMeter.Postgres and TokenMeter.AspNetCore");
        foreach (var project in packed.Projects)
        {
            using var zip = ZipFile.OpenRead(packed.PackageOf(project));
            Assert.Equal(PackedLibraries.PackageIdOf(project), Nuspec(zip).Element(Ns(zip) + "id")?.Value);
        }
    }

    [Theory]
    [MemberData(nameof(Libraries))]
    public void Package_has_a_readme_longer_than_a_screen(string library)
    {
        using var zip = Open(library);
        var metadata = Nuspec(zip);
        Assert.Equal("README.md", metadata.Element(Ns(zip) + "readme")?.Value);
        var entry = zip.GetEntry("README.md");
        Assert.NotNull(entry);
        using var reader = new StreamReader(entry.Open());
        var lines = reader.ReadToEnd().Split('\n');
        Assert.True(lines.Length > ScreenLines, $"{library}'s README has {lines.Length} lines; its NuGet page needs more than {ScreenLines}");
        Assert.DoesNotContain(lines, l => l.Contains("CONTRACT.md", StringComparison.Ordinal) || l.Contains("the contract (§", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Libraries))]
    public void Package_has_xml_docs_license_and_repository(string library)
    {
        using var zip = Open(library);
        var ns = Ns(zip);
        var metadata = Nuspec(zip);

        var docs = zip.GetEntry($"lib/net10.0/{library}.xml");
        Assert.NotNull(docs);
        using (var stream = docs.Open())
        {
            Assert.NotEmpty(XDocument.Load(stream).Descendants("member"));
        }

        Assert.NotNull(zip.GetEntry($"lib/net10.0/{library}.dll"));

        var license = metadata.Element(ns + "license");
        Assert.Equal("expression", license?.Attribute("type")?.Value);
        Assert.Equal("MIT", license?.Value);

        var repository = metadata.Element(ns + "repository");
        Assert.Equal("git", repository?.Attribute("type")?.Value);
        Assert.StartsWith("https://github.com/", repository?.Attribute("url")?.Value);
        Assert.False(string.IsNullOrWhiteSpace(metadata.Element(ns + "projectUrl")?.Value));
        Assert.False(string.IsNullOrWhiteSpace(metadata.Element(ns + "description")?.Value));
        Assert.False(string.IsNullOrWhiteSpace(metadata.Element(ns + "tags")?.Value));
    }

    [Fact]
    public void Core_package_depends_on_neither_Npgsql_AspNetCore_nor_MailKit()
    {
        using var zip = Open("TokenMeter");
        var ns = Ns(zip);
        var metadata = Nuspec(zip);
        var dependencies = metadata.Descendants(ns + "dependency").Select(d => d.Attribute("id")!.Value).ToArray();
        var frameworks = metadata.Descendants(ns + "frameworkReference").Select(d => d.Attribute("name")!.Value).ToArray();
        Assert.NotEmpty(dependencies);
        Assert.DoesNotContain(dependencies, IsForbiddenInCore);
        Assert.DoesNotContain(frameworks, f => f.StartsWith("Microsoft.AspNetCore", StringComparison.OrdinalIgnoreCase));

        // Transitively too: every package the core restores (its whole dependency graph).
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(PackedLibraries.RepoRoot, "src/TokenMeter/obj/project.assets.json")));
        var graph = assets.RootElement.GetProperty("libraries").EnumerateObject().Select(p => p.Name.Split('/')[0]).ToArray();
        Assert.Contains("OpenAI", graph);
        Assert.DoesNotContain(graph, IsForbiddenInCore);
    }

    [Fact]
    public async Task A_fresh_app_builds_the_readme_quick_start_from_the_packed_packages()
    {
        // What a new user does: a new web project, the three packages from a feed, the README's Program.cs.
        var app = Directory.CreateTempSubdirectory("tokenmeter-consumer-");
        try
        {
            var version = VersionOf(packed.PackageOf(Path.Combine(PackedLibraries.RepoRoot, "src", "TokenMeter", "TokenMeter.csproj")), "Meterworks.TokenMeter");
            var globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            File.WriteAllText(Path.Combine(app.FullName, "HintApp.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk.Web">
                  <PropertyGroup>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Meterworks.TokenMeter" Version="{version}" />
                    <PackageReference Include="Meterworks.TokenMeter.Postgres" Version="{version}" />
                    <PackageReference Include="Meterworks.TokenMeter.AspNetCore" Version="{version}" />
                    <PackageReference Include="Microsoft.AspNetCore.Authentication.JwtBearer" Version="10.0.15" />
                  </ItemGroup>
                </Project>
                """);

            // The packed packages restore into a throwaway folder (the same version is packed on every run, so
            // it must never be cached in the user's global folder); everything else comes from that folder.
            File.WriteAllText(Path.Combine(app.FullName, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="packed" value="{packed.Folder}" />
                  </packageSources>
                  <fallbackPackageFolders>
                    <add key="user" value="{globalPackages}" />
                  </fallbackPackageFolders>
                  <config>
                    <add key="globalPackagesFolder" value="{Path.Combine(app.FullName, "packages")}" />
                  </config>
                </configuration>
                """);
            File.Copy(Path.Combine(PackedLibraries.RepoRoot, "samples", "QuickStart", "Program.cs"), Path.Combine(app.FullName, "Program.cs"));

            var output = await Dotnet.RunAsync(app.FullName, TimeSpan.FromMinutes(5), "build", "-c", "Release", "-warnaserror", "--nologo");
            Assert.True(File.Exists(Path.Combine(app.FullName, "bin", "Release", "net10.0", "HintApp.dll")), output);
            Assert.True(Directory.Exists(Path.Combine(app.FullName, "packages", "meterworks.tokenmeter", version)), "the core package was not restored from the packed folder");
        }
        finally
        {
            app.Delete(recursive: true);
        }
    }

    private static string VersionOf(string nupkg, string id) =>
        Path.GetFileNameWithoutExtension(nupkg)[(id.Length + 1)..];

    [Fact]
    public void AspNetCore_package_graph_has_no_mail_client()
    {
        // The whole restore graph of TokenMeter.AspNetCore (`dotnet list package --include-transitive`):
        // mail (MailKit, MimeKit, BouncyCastle) comes only with TokenMeter.Email.
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(PackedLibraries.RepoRoot, "src/TokenMeter.AspNetCore/obj/project.assets.json")));
        var graph = assets.RootElement.GetProperty("libraries").EnumerateObject().Select(p => p.Name.Split('/')[0]).ToArray();
        Assert.Contains("OpenAI", graph); // the core's packages are in it: the graph is transitive
        Assert.DoesNotContain(graph, id => id.StartsWith("MailKit", StringComparison.OrdinalIgnoreCase)
            || id.StartsWith("MimeKit", StringComparison.OrdinalIgnoreCase)
            || id.StartsWith("BouncyCastle", StringComparison.OrdinalIgnoreCase));
    }

    private static bool IsForbiddenInCore(string id) =>
        id.StartsWith("Npgsql", StringComparison.OrdinalIgnoreCase)
        || id.StartsWith("Microsoft.AspNetCore", StringComparison.OrdinalIgnoreCase)
        || id.StartsWith("MailKit", StringComparison.OrdinalIgnoreCase)
        || id.StartsWith("MimeKit", StringComparison.OrdinalIgnoreCase);

    private ZipArchive Open(string library) =>
        ZipFile.OpenRead(packed.PackageOf(Path.Combine(PackedLibraries.RepoRoot, "src", library, library + ".csproj")));

    private static XElement Nuspec(ZipArchive zip)
    {
        var entry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var stream = entry.Open();
        var root = XDocument.Load(stream).Root!;
        return root.Element(root.Name.Namespace + "metadata")!;
    }

    private static XNamespace Ns(ZipArchive zip) => Nuspec(zip).Name.Namespace;
}

/// <summary>Runs the dotnet CLI with a deadline and fails with its output when it fails.</summary>
internal static class Dotnet
{
    public static async Task<string> RunAsync(string workingDirectory, TimeSpan deadline, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(deadline);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', args)} did not finish within {deadline}");
        }

        var output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited {process.ExitCode}:\n{output}");
        return output;
    }
}
