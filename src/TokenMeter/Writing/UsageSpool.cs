using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using TokenMeter.Diagnostics;

namespace TokenMeter.Writing;

/// <summary>
/// A folder of JSON Lines files, one per spilled batch. A file is written under a temporary name,
/// flushed to disk and then renamed, so a file with the final name is always complete. Names sort
/// in the order the files were written.
/// </summary>
internal sealed class UsageSpool
{
    private const string Extension = ".jsonl";
    private const string TempExtension = ".tmp";
    private static long s_sequence;

    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public UsageSpool(string directory, TimeProvider timeProvider, ILogger logger)
    {
        Directory = directory;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public string Directory { get; }

    /// <summary>Removes half-written files a crash left behind; their records never left memory as a complete file.</summary>
    public void DeleteIncompleteFiles()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return;
        }

        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*" + TempExtension))
        {
            File.Delete(file);
        }
    }

    /// <summary>The complete spool files, oldest first.</summary>
    public IReadOnlyList<string> Files()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return [];
        }

        var files = System.IO.Directory.GetFiles(Directory, "*" + Extension);
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }

    /// <summary>Writes the records to a new spool file, durably. Returns its path.</summary>
    public async Task<string> WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var name = string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"{_timeProvider.GetUtcNow().UtcTicks:D19}-{Interlocked.Increment(ref s_sequence):D10}-{Guid.NewGuid():N}");
        var temp = Path.Combine(Directory, name + TempExtension);
        var final = Path.Combine(Directory, name + Extension);

        try
        {
            var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.Asynchronous);
            await using (stream.ConfigureAwait(false))
            {
                foreach (var record in records)
                {
                    var line = JsonSerializer.SerializeToUtf8Bytes(record, SpoolJsonContext.Default.UsageRecord);
                    await stream.WriteAsync(line, cancellationToken).ConfigureAwait(false);
                    stream.WriteByte((byte)'\n');
                }

                await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, final);
            return final;
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Reads a spool file; lines that cannot be read are logged and skipped.</summary>
    public async Task<List<UsageRecord>> ReadAsync(string path, CancellationToken cancellationToken)
    {
        var records = new List<UsageRecord>();
        var lines = await File.ReadAllLinesAsync(path, cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                continue;
            }

            try
            {
                var record = JsonSerializer.Deserialize(lines[i], SpoolJsonContext.Default.UsageRecord);
                if (record is not null)
                {
                    records.Add(record);
                }
            }
            catch (JsonException ex)
            {
                Log.SpoolLineUnreadable(_logger, ex, i + 1, path);
            }
        }

        return records;
    }

    public static void Delete(string path) => File.Delete(path);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Left for DeleteIncompleteFiles at the next start.
        }
        catch (UnauthorizedAccessException)
        {
            // Same.
        }
    }
}

/// <summary>Source-generated JSON for spool files.</summary>
[JsonSourceGenerationOptions(UseStringEnumConverter = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UsageRecord))]
internal sealed partial class SpoolJsonContext : JsonSerializerContext;
