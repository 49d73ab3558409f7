using System.Globalization;
using TokenMeter.LoadTest.Harness;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.LoadTest;

/// <summary>
/// <c>dotnet run -c Release --project bench/TokenMeter.LoadTest -- &lt;command&gt; [args]</c>.
/// Every command starts its own throwaway PostgreSQL cluster and fake model, prints its figures,
/// and cleans up. See bench/RESULTS.md for the figures and docs/reliability.md for the promises.
/// </summary>
internal static class Commands
{
    public static async Task<int> RunAsync(string[] args)
    {
        var command = args.Length > 0 ? args[0] : "help";
        var rest = args.Skip(1).ToArray();
        Print($"# {command} {string.Join(' ', rest)} — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");
        switch (command)
        {
            case "sample-vs-sdk":
                return await BenchCommands.SampleVsSdkAsync(rest).ConfigureAwait(false);
            case "sustained":
                return await BenchCommands.SustainedAsync(rest).ConfigureAwait(false);
            case "export":
                return await BenchCommands.ExportAsync(rest).ConfigureAwait(false);
            case "shared-limits":
                return await SharedLimitsCommands.RunAsync(rest).ConfigureAwait(false);
            default:
                if (await FaultCommands.RunAsync(command, rest).ConfigureAwait(false) is { } faultExit)
                {
                    return faultExit;
                }

                Print("commands:\n" + FaultCommands.Help + "\n" + BenchCommands.Help + "\n" + SharedLimitsCommands.Help);
                return command == "help" ? 0 : 2;
        }
    }

    internal static void Print(string line)
    {
        Console.WriteLine(line);
    }

    internal static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    internal static TimeSpan Seconds(string[] args, int index, double fallback) => TimeSpan.FromSeconds(args.Length > index ? double.Parse(args[index], CultureInfo.InvariantCulture) : fallback);

    internal static int Int(string[] args, int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
}
