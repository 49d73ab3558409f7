using TokenMeter.Testing.Scenarios;
using Xunit.Abstractions;

namespace TokenMeter.FaultTests;

/// <summary>
/// docs/reliability.md: SIGTERM loses nothing; SIGKILL loses at most the records of the last flush
/// interval (plus one store write and the calls in flight) and never double-counts; records spooled
/// while PostgreSQL was down replay after a crash. The real sample runs as a child process.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class SignalTests(PostgresServerFixture postgres, ITestOutputHelper output)
{
    private static readonly TimeSpan Flush = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task SigtermUnderLoad_NothingLost()
    {
        var o = await RunAsync(SampleProcess.SigTerm, databaseDown: false, restart: false, loadSeconds: 2);

        Assert.True(o.Exited);
        Assert.Equal(0, o.ExitCode);
        Assert.True(o.CallerOk > 0);
        Assert.Equal(0, o.Lost);
        Assert.Equal(o.RowsAfterExit, o.DistinctAfterRestart);
        Assert.Empty(o.Failures);
    }

    [Fact]
    public async Task SigkillUnderLoad_ThenRestart_LossWithinTheFlushBound_NoDuplicates()
    {
        var o = await RunAsync(SampleProcess.SigKill, databaseDown: false, restart: true, loadSeconds: 4);

        Assert.True(o.Exited);
        Assert.True(o.CallerOk > 0);
        Assert.InRange(o.Lost, 0, o.LossBound);
        Assert.Equal(0, o.Duplicates);
        Assert.Empty(o.Failures);
    }

    [Fact]
    public async Task SigkillWithPostgresDown_BothRestarted_SpoolReplays_NoDuplicates()
    {
        var o = await RunAsync(SampleProcess.SigKill, databaseDown: true, restart: true, loadSeconds: 1);

        Assert.True(o.SpooledLines > 0, "nothing was spooled while PostgreSQL was down");
        Assert.True(o.RowsAfterRestart >= o.RowsAfterExit + o.SpooledLines, $"rows after restart {o.RowsAfterRestart}, before {o.RowsAfterExit}, spooled {o.SpooledLines}");
        Assert.Equal(0, o.SpoolFilesAfterRestart);
        Assert.Equal(0, o.Duplicates);
        Assert.InRange(o.Lost, 0, o.LossBound);
        Assert.Empty(o.Failures);
    }

    // A crash run loads for 4 s so that the writer's first store write (slow on a loaded machine) is
    // long done and the run measures the steady state the bound describes.
    private async Task<ShutdownOutcome> RunAsync(int signal, bool databaseDown, bool restart, int loadSeconds)
    {
        var o = await FaultScenarios.SignalUnderLoadAsync(postgres.Server, signal, TimeSpan.FromSeconds(loadSeconds), callers: 8, Flush, databaseDown, restart, output.WriteLine);
        foreach (var line in o.Report())
        {
            output.WriteLine(line);
        }

        if (o.Failures.Count > 0)
        {
            output.WriteLine("sample output:\n" + o.Output);
        }

        return o;
    }
}
