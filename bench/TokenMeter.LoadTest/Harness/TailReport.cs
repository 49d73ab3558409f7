using System.Globalization;
using TokenMeter.Testing.Scenarios;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// <c>sample-vs-sdk --tail</c>: what the slowest requests of one caller count have in common. Each request
/// the harness timed (start and end, UTC ticks, and for the sample the trace id it sent) is set against what
/// the probes saw meanwhile: the sample's own timing of the request (incoming activity) and of its model call
/// (outgoing activity), the garbage-collection pauses of the sample and of the harness, the sample's
/// PostgreSQL commands (the metering writer's batches) and its thread-pool queue.
/// </summary>
public static class TailReport
{
    public readonly record struct Call(bool Sample, string TraceId, long Start, long End);

    public readonly record struct Phase(bool Sample, long Start, long End);

    private readonly record struct Span(long Start, long End, long Value);

    /// <summary>How the shared limits' batch (slice claims, exact checks, settles) begins, as the probe writes it (commas dropped).</summary>
    private const string LimitBatchText = "SELECT set_config('synchronous_commit' 'off' true) set_con";

    /// <summary>A call that spent this long in the app before its model call started waited for something.</summary>
    private const double WaitedMs = 2;

    /// <summary>Writes the raw material of <see cref="Print"/> next to <paramref name="prefix"/> for a closer look.</summary>
    public static void Save(string prefix, IReadOnlyList<Call> calls, IReadOnlyList<Phase> phases, string sampleProbeFile, IEnumerable<string> harnessLines)
    {
        File.WriteAllLines(prefix + ".calls.csv", calls.Select(c => string.Create(CultureInfo.InvariantCulture, $"{(c.Sample ? "A" : "B")},{c.TraceId},{c.Start},{c.End}")));
        File.WriteAllLines(prefix + ".phases.csv", phases.Select(p => string.Create(CultureInfo.InvariantCulture, $"{(p.Sample ? "A" : "B")},{p.Start},{p.End}")));
        File.Copy(sampleProbeFile, prefix + ".sample.csv", overwrite: true);
        File.WriteAllLines(prefix + ".harness.csv", harnessLines);
    }

    public static void Print(IReadOnlyList<Call> calls, IReadOnlyList<Phase> phases, IEnumerable<string> sampleLines, IEnumerable<string> harnessLines, Action<string> log)
    {
        var from = phases.Min(p => p.Start);
        var to = phases.Max(p => p.End);
        var incoming = new Dictionary<string, Span>(StringComparer.Ordinal);
        var outgoing = new Dictionary<string, Span>(StringComparer.Ordinal);
        var sampleGc = new List<Span>();
        var samplePromoted = new List<Span>();
        var postgres = new List<Span>();
        var limitBatches = new List<Span>();
        var postgresNames = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var inRequest = new Dictionary<string, (double Ms, string Text)>(StringComparer.Ordinal);
        var queue = new List<Span>();
        foreach (var line in sampleLines)
        {
            var f = line.Split(',');
            var start = long.Parse(f[1], CultureInfo.InvariantCulture);
            var end = long.Parse(f[2], CultureInfo.InvariantCulture);
            if (end < from || start > to)
            {
                continue;
            }

            switch (f[0])
            {
                case "gc":
                    sampleGc.Add(new Span(start, end, long.Parse(f[3], CultureInfo.InvariantCulture)));
                    break;
                case "heap":
                    samplePromoted.Add(new Span(start, end, long.Parse(f[3], CultureInfo.InvariantCulture) + long.Parse(f[4], CultureInfo.InvariantCulture)));
                    break;
                case "tp":
                    queue.Add(new Span(start, end, long.Parse(f[3], CultureInfo.InvariantCulture)));
                    break;
                case "act" when f[3] == "Microsoft.AspNetCore":
                    incoming[f[4]] = new Span(start, end, 0);
                    break;
                case "act" when f[3] == "System.Net.Http":
                    outgoing[f[4]] = new Span(start, end, 0);
                    break;
                case "act" when f[3] == "Npgsql":
                    postgres.Add(new Span(start, end, 0));
                    var name = f[5];
                    if (name.StartsWith(LimitBatchText, StringComparison.Ordinal))
                    {
                        limitBatches.Add(new Span(start, end, 0));
                    }

                    if (!postgresNames.TryGetValue(name, out var durations))
                    {
                        postgresNames[name] = durations = [];
                    }

                    durations.Add((end - start) / 1e4);
                    inRequest[f[4]] = inRequest.TryGetValue(f[4], out var waited) ? (waited.Ms + ((end - start) / 1e4), waited.Text) : ((end - start) / 1e4, name);
                    break;
            }
        }

        var harnessGc = harnessLines.Select(l => l.Split(',')).Where(f => f[0] == "gc")
            .Select(f => new Span(long.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture), long.Parse(f[3], CultureInfo.InvariantCulture)))
            .Where(s => s.End >= from && s.Start <= to).ToList();

        log("    sample's PostgreSQL commands (metering writer, role cache): " + string.Join("; ", postgresNames.OrderByDescending(n => n.Value.Sum()).Take(4).Select(n =>
            string.Create(CultureInfo.InvariantCulture, $"'{n.Key}' x{n.Value.Count}, median {Stats.Percentile([.. n.Value], 50):F1} ms, max {n.Value.Max():F1} ms, total {n.Value.Sum():F0} ms"))));
        foreach (var side in new[] { true, false })
        {
            var mine = phases.Where(p => p.Sample == side).ToArray();
            var seconds = mine.Sum(p => (p.End - p.Start) / 1e7);
            var count = calls.Count(c => c.Sample == side);
            string Pauses(List<Span> gcs, string who)
            {
                var inside = gcs.Where(g => mine.Any(p => g.Start >= p.Start && g.Start <= p.End)).ToArray();
                var total = inside.Sum(g => (g.End - g.Start) / 1e4);
                return string.Create(CultureInfo.InvariantCulture,
                    $"{who} GCs {inside.Length} ({inside.Count(g => g.Value == 0)} gen0, {inside.Count(g => g.Value == 1)} gen1, {inside.Count(g => g.Value >= 2)} gen2) = {inside.Length * 1000.0 / Math.Max(1, count):F2} per 1,000 calls, pause {total:F0} ms ({total / Math.Max(1e-9, seconds) / 10:F2} % of the time), longest {(inside.Length == 0 ? 0 : inside.Max(g => (g.End - g.Start) / 1e4)):F1} ms");
            }

            var promoted = samplePromoted.Where(g => mine.Any(p => g.Start >= p.Start && g.Start <= p.End)).ToArray();
            log($"    {(side ? "A (sample)" : "B (sdk)   ")}: {Pauses(sampleGc, "sample")}, promoted {(promoted.Length == 0 ? 0 : promoted.Average(s => s.Value) / 1024):F0} KiB per GC; {Pauses(harnessGc, "harness")}");
        }

        static double Ms(long ticks) => ticks / 1e4;
        var anyGc = new Spans(sampleGc);
        var olderGc = new Spans(sampleGc.Where(g => g.Value >= 1));
        var harnessPauses = new Spans(harnessGc);
        var commands = new Spans(postgres);
        var queued = new Spans(queue.Where(q => q.Value >= 4));

        foreach (var side in new[] { true, false })
        {
            var mine = calls.Where(c => c.Sample == side).ToArray();
            if (mine.Length == 0)
            {
                continue;
            }

            var latencies = mine.Select(c => Ms(c.End - c.Start)).ToArray();
            var p99 = Stats.Percentile(latencies, 99);
            var slow = mine.Where(c => Ms(c.End - c.Start) >= p99).ToArray();
            var causes = new (string Name, Func<Call, bool> Hit)[]
            {
                ("sample GC", c => anyGc.Touch(c.Start, c.End)),
                ("sample gen1+ GC", c => olderGc.Touch(c.Start, c.End)),
                ("harness GC", c => harnessPauses.Touch(c.Start, c.End)),
                ("sample PostgreSQL command", c => commands.Touch(c.Start, c.End)),
                ("sample pool queue >= 4", c => queued.Touch(c.Start, c.End)),
            };
            log(string.Create(CultureInfo.InvariantCulture, $"    {(side ? "A" : "B")} slowest 1 % ({slow.Length} calls >= {p99:F2} ms; p50 {Stats.Percentile(latencies, 50):F2} ms): share touched by ... (all calls -> slowest; p99 of the calls it did not touch)"));
            var untouchedByAny = mine.Where(c => !causes.Any(x => x.Hit(c))).Select(c => Ms(c.End - c.Start)).ToArray();
            foreach (var (name, hit) in causes)
            {
                var rest = mine.Where(c => !hit(c)).Select(c => Ms(c.End - c.Start)).ToArray();
                log(string.Create(CultureInfo.InvariantCulture,
                    $"      {name,-26} {100.0 * mine.Count(hit) / mine.Length,5:F1} % -> {100.0 * slow.Count(hit) / slow.Length,5:F1} %; p99 without {Stats.Percentile(rest, 99):F2} ms"));
            }

            log(string.Create(CultureInfo.InvariantCulture,
                $"      {"none of these",-26} {100.0 * untouchedByAny.Length / mine.Length,5:F1} % -> {100.0 * slow.Count(c => !causes.Any(x => x.Hit(c))) / slow.Length,5:F1} %; their p99 {Stats.Percentile(untouchedByAny, 99):F2} ms"));

            if (!side)
            {
                continue;
            }

            // Where the time of the sample's requests went, from the two processes' clocks (UTC; the same clock).
            var parts = new[] { "to the app", "app before model", "  of it PostgreSQL", "model call", "app after model", "back to client" };
            double[] Split(Call c)
            {
                if (!incoming.TryGetValue(c.TraceId, out var s) || !outgoing.TryGetValue(c.TraceId, out var m))
                {
                    return [];
                }

                return [Ms(s.Start - c.Start), Ms(m.Start - s.Start), inRequest.GetValueOrDefault(c.TraceId).Ms, Ms(m.End - m.Start), Ms(s.End - m.End), Ms(c.End - s.End)];
            }

            var all = mine.Select(Split).Where(x => x.Length > 0).ToArray();
            var slowSplit = slow.Select(Split).Where(x => x.Length > 0).ToArray();
            if (all.Length == 0)
            {
                log("      (no server-side activities matched: is the startup hook loaded?)");
                continue;
            }

            // Calls that waited in the app before their model call, by what ran meanwhile (first match).
            var sdkP99 = Stats.Percentile([.. calls.Where(c => !c.Sample).Select(c => Ms(c.End - c.Start))], 99);
            var batches = new Spans(limitBatches);
            var waited = new Dictionary<string, int>(StringComparer.Ordinal);
            var waitedIds = new HashSet<string>(StringComparer.Ordinal);
            foreach (var c in mine)
            {
                if (!incoming.TryGetValue(c.TraceId, out var s) || !outgoing.TryGetValue(c.TraceId, out var m) || Ms(m.Start - s.Start) < WaitedMs)
                {
                    continue;
                }

                waitedIds.Add(c.TraceId);
                var why = batches.Touch(s.Start, m.Start) ? "a shared-limits batch (slice claim) ran"
                    : anyGc.Touch(s.Start, m.Start) ? "a sample GC pause"
                    : queued.Touch(s.Start, m.Start) ? "the sample's pool queue >= 4"
                    : "none of these";
                waited[why] = waited.GetValueOrDefault(why) + 1;
            }

            var notWaited = mine.Where(c => !waitedIds.Contains(c.TraceId)).Select(c => Ms(c.End - c.Start)).ToArray();
            var p99NotWaited = Stats.Percentile(notWaited, 99);
            log(FormattableString.Invariant(
                $"    A calls that waited >= {WaitedMs:F0} ms in the app before the model call: {waitedIds.Count} ({100.0 * waitedIds.Count / mine.Length:F2} %), {slow.Count(c => waitedIds.Contains(c.TraceId))} of the {slow.Length} slowest; meanwhile: ")
                + string.Join("; ", waited.OrderByDescending(w => w.Value).Select(w => FormattableString.Invariant($"{w.Key} {w.Value}")))
                + FormattableString.Invariant($"; p99 without them {p99NotWaited:F2} ms = {p99NotWaited / sdkP99:F3} x the SDK's"));
            log(string.Create(CultureInfo.InvariantCulture, $"    A where the time went ({all.Length} of {mine.Length} calls matched): part: median of all | median and mean of the slowest 1 % | p99 of all"));
            for (var i = 0; i < parts.Length; i++)
            {
                var column = all.Select(x => x[i]).ToArray();
                log(string.Create(CultureInfo.InvariantCulture,
                    $"      {parts[i],-17} {Stats.Percentile(column, 50),7:F2} | {(slowSplit.Length == 0 ? double.NaN : Stats.Percentile([.. slowSplit.Select(x => x[i])], 50)),7:F2} {(slowSplit.Length == 0 ? double.NaN : slowSplit.Average(x => x[i])),7:F2} | {Stats.Percentile(column, 99),7:F2} ms"));
            }
        }
    }

    /// <summary>Intervals sorted by start, asked whether any overlaps a call.</summary>
    private sealed class Spans
    {
        private readonly Span[] _spans;
        private readonly long _longest;

        public Spans(IEnumerable<Span> spans)
        {
            _spans = [.. spans.OrderBy(s => s.Start)];
            _longest = _spans.Length == 0 ? 0 : _spans.Max(s => s.End - s.Start);
        }

        public bool Touch(long start, long end)
        {
            // The first span that could still reach start begins at or after start - longest.
            int lo = 0, hi = _spans.Length;
            while (lo < hi)
            {
                var mid = (lo + hi) / 2;
                if (_spans[mid].Start < start - _longest)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            for (var i = lo; i < _spans.Length && _spans[i].Start < end; i++)
            {
                if (_spans[i].End > start)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
