using System.Diagnostics.Tracing;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// The runtime's allocation samples (<c>GCAllocationTick</c>: one event per ~100 KB allocated, naming
/// the type that crossed the mark) for this process, by type: sampled bytes are proportional to
/// what each type allocated. Two phases compared per call show which types a code path adds.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private readonly Dictionary<string, long> _bytes = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>Takes the sampled bytes by type since the last call (and starts over).</summary>
    /// <returns>Bytes by type name.</returns>
    public Dictionary<string, long> Take()
    {
        lock (_gate)
        {
            var taken = new Dictionary<string, long>(_bytes, StringComparer.Ordinal);
            _bytes.Clear();
            return taken;
        }
    }

    /// <summary>Types by the bytes per call <paramref name="phase"/> allocated beyond <paramref name="baseline"/>, most first.</summary>
    /// <param name="phase">Sampled bytes of the phase.</param>
    /// <param name="phaseCalls">Its calls.</param>
    /// <param name="baseline">Sampled bytes of the baseline.</param>
    /// <param name="baselineCalls">Its calls.</param>
    /// <param name="top">How many types.</param>
    /// <returns>Lines: type, bytes per call added.</returns>
    public static IEnumerable<string> Added(Dictionary<string, long> phase, long phaseCalls, Dictionary<string, long> baseline, long baselineCalls, int top) =>
        phase.Keys.Union(baseline.Keys)
            .Select(type => (Type: type, PerCall: (phase.GetValueOrDefault(type) / (double)Math.Max(1, phaseCalls)) - (baseline.GetValueOrDefault(type) / (double)Math.Max(1, baselineCalls))))
            .OrderByDescending(t => Math.Abs(t.PerCall))
            .Take(top)
            .Select(t => $"  {t.PerCall,8:F0} B  {t.Type}");

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (eventData.EventName is not { } name || !name.StartsWith("GCAllocationTick", StringComparison.Ordinal) || eventData.Payload is not { } payload || eventData.PayloadNames is not { } names)
        {
            return;
        }

        var type = names.IndexOf("TypeName") is var t and >= 0 ? payload[t] as string ?? "?" : "?";
        var amountIndex = names.IndexOf("AllocationAmount64");
        var amount = amountIndex >= 0 ? Convert.ToInt64(payload[amountIndex], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        lock (_gate)
        {
            _bytes[type] = _bytes.GetValueOrDefault(type) + amount;
        }
    }
}
