using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace TokenMeter.Testing.Scenarios;

/// <summary>
/// The real sample (<c>samples/HomeworkApi</c>) run as a child process:
/// <c>dotnet HomeworkApi.dll --urls http://127.0.0.1:0</c>, configured by environment variables,
/// so it can be sent SIGTERM or SIGKILL. Only this child is ever signalled, by its pid.
/// </summary>
public sealed partial class SampleProcess : IAsyncDisposable
{
    public const string SigningKey = "load-test-signing-key-that-is-long-enough-0123456789";
    public const string AdminUsername = "admin";
    public const string AdminPassword = "Load-harness-key-2026";
    public const int SigTerm = 15;
    public const int SigKill = 9;

    private readonly Process _process;
    private readonly List<string> _output = [];

    private SampleProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>What the child wrote to stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output);
            }
        }
    }

    /// <summary>The sample's built HomeworkApi.dll: TOKENMETER_SAMPLE_DLL, else samples/HomeworkApi/bin/{Release,Debug}/net10.0.</summary>
    public static string SampleDll
    {
        get
        {
            var set = Environment.GetEnvironmentVariable("TOKENMETER_SAMPLE_DLL");
            return string.IsNullOrWhiteSpace(set) ? BuiltSampleDll("HomeworkApi") : set;
        }
    }

    /// <summary>The built dll of the project samples/<paramref name="project"/> (this build's configuration first).</summary>
    public static string BuiltSampleDll(string project)
    {
        var root = RepoRoot;
#if DEBUG
        string[] order = ["Debug", "Release"];
#else
        string[] order = ["Release", "Debug"];
#endif
        foreach (var config in order)
        {
            var path = Path.Combine(root, "samples", project, "bin", config, "net10.0", project + ".dll");
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new InvalidOperationException($"samples/{project} is not built: run `dotnet build samples/{project} -c Release`.");
    }

    /// <summary>The folder holding TokenMeter.sln.</summary>
    public static string RepoRoot
    {
        get
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

    /// <summary>The environment a load or fault run gives the sample: PostgreSQL, the fake model, an admin, no rate limits, quiet logs.</summary>
    public static Dictionary<string, string?> Settings(string? connectionString, Uri modelEndpoint, string spoolDirectory, TimeSpan flushInterval)
    {
        return new Dictionary<string, string?>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["ConnectionStrings__TokenMeter"] = connectionString ?? string.Empty,
            ["OpenAI__Endpoint"] = modelEndpoint.ToString(),
            ["OpenAI__ApiKey"] = "load-test-key",
            ["OpenAI__MaxRetries"] = "0",
            ["OpenAI__TimeoutSeconds"] = "30",
            ["Jwt__SigningKey"] = SigningKey,
            ["Admin__Username"] = AdminUsername,
            ["Admin__Password"] = AdminPassword,
            ["Admin__Email"] = "admin@example.com",
            ["Homework__LoginAttemptsPerMinute"] = "100000",
            ["Homework__LoginAttemptsPerAccountPerMinute"] = "100000",
            ["Homework__RegistrationsPerHour"] = "100000",
            ["Homework__RateLimits__RequestsPerMinute"] = "0",
            ["Homework__RateLimits__TokensPerMinute"] = "0",
            ["TokenMeter__Writer__SpoolDirectory"] = spoolDirectory,
            ["TokenMeter__Writer__FlushInterval"] = flushInterval.ToString("c", CultureInfo.InvariantCulture),
            ["TokenMeter__Writer__InitialRetryDelay"] = "00:00:00.100",
            ["TokenMeter__Writer__MaxRetryDelay"] = "00:00:01",
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
            ["Logging__Console__FormatterName"] = "simple",
            ["DOTNET_gcServer"] = "0",
        };
    }

    /// <summary>Starts the sample and waits until it listens (its "Now listening on" line) and answers /health.</summary>
    public static Task<SampleProcess> StartAsync(IDictionary<string, string?> environment, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => StartAsync(SampleDll, environment, "/health", static r => r.IsSuccessStatusCode, timeout, cancellationToken);

    /// <summary>
    /// Starts any built web app (<paramref name="dll"/>) the same way and waits until it listens and
    /// <paramref name="readyPath"/> answers as <paramref name="ready"/> wants.
    /// </summary>
    public static async Task<SampleProcess> StartAsync(
        string dll,
        IDictionary<string, string?> environment,
        string readyPath,
        Func<HttpResponseMessage, bool> ready,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ready);
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add("http://127.0.0.1:0");
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the sample.");
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var lines = new List<string>();
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (lines)
            {
                if (lines.Count < 5000)
                {
                    lines.Add(line);
                }
            }

            var m = ListeningRegex().Match(line);
            if (m.Success)
            {
                listening.TrySetResult(new Uri(m.Groups[1].Value.TrimEnd('/') + "/"));
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("The sample exited during start-up."));

        try
        {
            var uri = await listening.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
            var sample = new SampleProcess(process, uri);
            lock (lines)
            {
                sample._output.AddRange(lines);
            }

            process.OutputDataReceived += (_, e) => sample.Append(e.Data);
            process.ErrorDataReceived += (_, e) => sample.Append(e.Data);
            using var http = new HttpClient { BaseAddress = uri, Timeout = TimeSpan.FromSeconds(10) };
            var healthy = await Eventually.PollAsync(
                async ct =>
                {
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, cancellationToken);
                    using var health = await http.GetAsync(readyPath, linked.Token).ConfigureAwait(false);
                    return ready(health);
                },
                static ok => ok,
                TimeSpan.FromSeconds(30),
                TimeSpan.FromMilliseconds(100),
                // Refused, or slower than one request's time-out on a loaded machine: not yet, until the deadline.
                transient: ex => ex is HttpRequestException || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return healthy.Met ? sample : throw new InvalidOperationException($"{Path.GetFileName(dll)} did not become ready ({readyPath}):\n" + sample.Output);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            string text;
            lock (lines)
            {
                text = string.Join('\n', lines);
            }

            if (!process.HasExited)
            {
                _ = kill(process.Id, SigKill);
            }

            process.Dispose();
            throw new InvalidOperationException("The sample did not start: " + ex.Message + "\n" + text, ex);
        }
    }

    /// <summary>Sends a signal to this child (and only this child).</summary>
    public void Signal(int signal)
    {
        if (!_process.HasExited && kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Waits for the child to exit; false when it did not within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The child's resident set size (VmRSS), or 0 once it is gone.</summary>
    public long WorkingSetBytes()
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var kb = long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                    return kb * 1024;
                }
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, SigKill);
            await WaitForExitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Count < 5000)
            {
                _output.Add(line);
            }
        }
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningRegex();

#pragma warning disable SYSLIB1054 // One trivial libc call.
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
#pragma warning restore SYSLIB1054
}
