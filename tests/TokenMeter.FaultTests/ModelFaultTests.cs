using TokenMeter.Testing.Scenarios;
using Xunit.Abstractions;

namespace TokenMeter.FaultTests;

/// <summary>
/// docs/reliability.md: when the model endpoint fails (500, 429, malformed JSON, no usage, cut
/// streams) callers see exactly what an unmetered SDK client sees, every call is recorded once with
/// the right status, and metering never throws or logs a failure of its own.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class ModelFaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ModelFaultsUnder16Callers_CallersSeeTheSdksBehaviour_EveryCallRecordedWithItsStatus()
    {
        var o = await ModelFaultScenario.RunAsync(calls: 400, callers: 16, connectionString: null, output.WriteLine);
        foreach (var line in o.Report())
        {
            output.WriteLine(line);
        }

        Assert.Equal(400, o.Cases.Count);
        Assert.Equal(o.ScriptedByStatus.OrderBy(p => p.Key), o.RecordedByStatus.OrderBy(p => p.Key));
        Assert.Equal(0, o.MeteringErrorsLogged);
        Assert.Empty(o.Failures);
    }
}
