using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace TokenMeter.Writing;

/// <summary>Options of the background usage writer, bound from <c>TokenMeter:Writer</c>.</summary>
public sealed class UsageWriterOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Writer";

    /// <summary>Most records stored in one batch. Default 500.</summary>
    [Range(1, 100_000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>Longest a queued record waits for its batch to fill before it is stored anyway. Default 1 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Records the in-memory queue holds; beyond it records are spilled to the spool, never dropped. Default 100,000.</summary>
    [Range(1, 10_000_000)]
    public int QueueCapacity { get; set; } = 100_000;

    /// <summary>First delay before retrying a failed store write; it doubles on each failure. Default 200 ms.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan InitialRetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest delay between retries (and between checks whether a down store is back). Default 30 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Failed attempts at storing a batch before it is spilled to the spool. Default 3.</summary>
    [Range(1, 100)]
    public int MaxAttemptsBeforeSpool { get; set; } = 3;

    /// <summary>
    /// Folder of the durable spool that holds batches while the store is down (and what a crash
    /// left behind). Default: <c>TokenMeter/spool/&lt;app name&gt;-&lt;hash of the app's folder&gt;</c>
    /// under the local application data folder, else under the temp folder. Every writer replays
    /// whatever it finds there, so give each app (and each test host that makes its store fail) its own folder.
    /// </summary>
    public string? SpoolDirectory { get; set; }

    internal string ResolveSpoolDirectory()
    {
        if (!string.IsNullOrWhiteSpace(SpoolDirectory))
        {
            return Path.GetFullPath(SpoolDirectory);
        }

        var root = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        if (string.IsNullOrEmpty(root))
        {
            root = Path.GetTempPath();
        }

        var app = System.Reflection.Assembly.GetEntryAssembly()?.GetName().Name ?? "app";
        foreach (var c in Path.GetInvalidFileNameChars())
        {
            app = app.Replace(c, '_');
        }

        // The app's folder joins the name, so two apps (or two test projects) with the same entry
        // assembly name on one machine do not replay each other's spool.
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(AppContext.BaseDirectory));
        return Path.Combine(root, "TokenMeter", "spool", app + "-" + Convert.ToHexStringLower(hash.AsSpan(0, 4)));
    }
}

/// <summary>Start-up validation of <see cref="UsageWriterOptions"/> (source-generated).</summary>
[OptionsValidator]
internal sealed partial class UsageWriterOptionsValidator : IValidateOptions<UsageWriterOptions>;
