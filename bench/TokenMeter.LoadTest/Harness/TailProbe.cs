using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;

namespace TokenMeter.LoadTest.Harness;

/// <summary>
/// What a process did while requests were slow (<c>sample-vs-sdk --tail</c>): its garbage-collection
/// pauses (runtime events: suspend to restart, the generation, the bytes promoted), the activities of
/// incoming requests, outgoing HTTP calls and PostgreSQL commands (start, duration, trace id), and the
/// thread pool's queue when it is not empty (sampled every 2 ms). One line per event, all times in UTC
/// ticks (the same clock in every process of the machine). The sample loads it as a startup hook
/// (<see cref="StartupHookPath"/>, writing to <see cref="OutputVariable"/>); the harness runs it
/// in-process for its own pauses.
/// </summary>
public sealed class TailProbe : IDisposable
{
    /// <summary>The environment variable naming the file the sample's probe appends to.</summary>
    public const string OutputVariable = "TOKENMETER_TAIL_PROBE_OUT";

    private readonly Action<string> _sink;
    private readonly RuntimeEvents _runtime;
    private readonly ActivityListener? _activities;
    private readonly Thread? _sampler;
    private volatile bool _stopped;

    public TailProbe(Action<string> sink, bool activities)
    {
        _sink = sink;
        _runtime = new RuntimeEvents(sink);
        if (!activities)
        {
            return;
        }

        _activities = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "Microsoft.AspNetCore" or "System.Net.Http" or "Npgsql",
            // PostgreSQL commands with their text (all data); the requests' own activities as lean as they come.
            Sample = (ref ActivityCreationOptions<ActivityContext> o) => o.Source.Name == "Npgsql" ? ActivitySamplingResult.AllData : ActivitySamplingResult.PropagationData,
            ActivityStopped = a => sink(string.Create(CultureInfo.InvariantCulture,
                $"act,{a.StartTimeUtc.Ticks},{a.StartTimeUtc.Ticks + a.Duration.Ticks},{a.Source.Name},{a.TraceId},{Describe(a)}")),
        };
        ActivitySource.AddActivityListener(_activities);
        _sampler = new Thread(SampleThreadPool) { IsBackground = true, Name = "tail probe" };
        _sampler.Start();
    }

    /// <summary>This assembly, to be named in <c>DOTNET_STARTUP_HOOKS</c> of the sample.</summary>
    public static string StartupHookPath => typeof(TailProbe).Assembly.Location;

    /// <summary>Starts the probe in this process, appending to the file <see cref="OutputVariable"/> names (flushed every 200 ms).</summary>
    public static void StartFromEnvironment()
    {
        var path = Environment.GetEnvironmentVariable(OutputVariable);
        if (string.IsNullOrEmpty(path))
        {
            return;
        }

        var lines = new ConcurrentQueue<string>();
        _ = new TailProbe(lines.Enqueue, activities: true);
        var writer = new Thread(() =>
        {
            using var file = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite));
            while (true)
            {
                Thread.Sleep(200);
                while (lines.TryDequeue(out var line))
                {
                    file.WriteLine(line);
                }

                file.Flush();
            }
        })
        { IsBackground = true, Name = "tail probe writer" };
        writer.Start();
    }

    public void Dispose()
    {
        _stopped = true;
        _runtime.Dispose();
        _activities?.Dispose();
    }

    /// <summary>An activity's name, or a PostgreSQL command's first words, on one line without commas.</summary>
    private static string Describe(Activity a)
    {
        var text = a.GetTagItem("db.query.text") as string ?? a.GetTagItem("db.statement") as string ?? a.OperationName;
        text = string.Join(' ', text.Split((char[])[' ', '\n', '\r', '\t', ','], StringSplitOptions.RemoveEmptyEntries));
        return text.Length > 60 ? text[..60] : text;
    }

    private void SampleThreadPool()
    {
        var lastThreads = -1;
        while (!_stopped)
        {
            Thread.Sleep(2);
            var pending = ThreadPool.PendingWorkItemCount;
            var threads = ThreadPool.ThreadCount;
            if (pending > 0 || threads != lastThreads)
            {
                var now = DateTime.UtcNow.Ticks;
                _sink(string.Create(CultureInfo.InvariantCulture, $"tp,{now},{now},{pending},{threads}"));
                lastThreads = threads;
            }
        }
    }

    /// <summary>GC pauses from the runtime's own events: a line at each restart with the collection's generation, and one with the bytes each collection promoted.</summary>
    private sealed class RuntimeEvents(Action<string> sink) : EventListener
    {
        private const int GCStart = 1;
        private const int RestartEEEnd = 3;
        private const int HeapStats = 4;
        private const int SuspendEEBegin = 9;

        private long _suspended;
        private int _generation = -1;

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, EventLevel.Informational, (EventKeywords)0x1); // GC keyword
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            switch (e.EventId)
            {
                case SuspendEEBegin:
                    _suspended = e.TimeStamp.ToUniversalTime().Ticks;
                    break;
                case GCStart:
                    _generation = Convert.ToInt32(e.Payload![1], CultureInfo.InvariantCulture);
                    break;
                case HeapStats:
                    // Bytes promoted out of gen0 and out of gen1 by the collection that just ended.
                    var at = e.TimeStamp.ToUniversalTime().Ticks;
                    sink(string.Create(CultureInfo.InvariantCulture, $"heap,{at},{at},{Convert.ToInt64(e.Payload![1], CultureInfo.InvariantCulture)},{Convert.ToInt64(e.Payload[3], CultureInfo.InvariantCulture)}"));
                    break;
                case RestartEEEnd when _suspended != 0:
                    // A pause without a collection (a suspension for something else) has generation -1.
                    sink(string.Create(CultureInfo.InvariantCulture, $"gc,{_suspended},{e.TimeStamp.ToUniversalTime().Ticks},{_generation}"));
                    _suspended = 0;
                    _generation = -1;
                    break;
            }
        }
    }
}

