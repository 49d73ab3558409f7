using System.Diagnostics.Metrics;

namespace TokenMeter.Diagnostics;

/// <summary>The background writer's instruments on the shared <c>TokenMeter</c> meter.</summary>
internal sealed class UsageWriterMetrics
{
    private readonly Counter<long> _queued;
    private readonly Counter<long> _written;
    private readonly Counter<long> _spooled;
    private readonly Counter<long> _replayed;
    private readonly Counter<long> _failed;
    private Func<long> _queueLength = static () => 0;

    public UsageWriterMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create("TokenMeter");
        _queued = meter.CreateCounter<long>("tokenmeter.writer.queued", "{record}", "Usage records handed to the writer.");
        _written = meter.CreateCounter<long>("tokenmeter.writer.written", "{record}", "Usage records stored from the queue.");
        _spooled = meter.CreateCounter<long>("tokenmeter.writer.spooled", "{record}", "Usage records written to the durable spool (store down, queue full, or shutdown).");
        _replayed = meter.CreateCounter<long>("tokenmeter.writer.replayed", "{record}", "Usage records stored from the spool.");
        _failed = meter.CreateCounter<long>("tokenmeter.writer.failed", "{batch}", "Failed attempts at storing a batch.");
        meter.CreateObservableGauge("tokenmeter.writer.queue.length", () => _queueLength(), "{record}", "Usage records waiting in memory to be stored.");
    }

    public void ObserveQueueLength(Func<long> queueLength) => _queueLength = queueLength;

    public void Queued() => _queued.Add(1);

    public void Written(int count) => _written.Add(count);

    public void Spooled(int count) => _spooled.Add(count);

    public void Replayed(int count) => _replayed.Add(count);

    public void Failed() => _failed.Add(1);
}
