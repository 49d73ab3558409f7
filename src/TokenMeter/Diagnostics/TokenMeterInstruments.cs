using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace TokenMeter.Diagnostics;

/// <summary>
/// Every instrument this assembly records on the <see cref="TokenMeterDiagnostics.MeterName"/>
/// meter, created once per <see cref="IMeterFactory"/> (so once per container, whoever asks first):
/// metered calls (named after the OpenTelemetry GenAI conventions where one exists), the writer and
/// budgets, alerts and webhooks. Units are UCUM braces.
/// </summary>
internal sealed class TokenMeterInstruments
{
    private static readonly ConditionalWeakTable<IMeterFactory, TokenMeterInstruments> PerFactory = new();

    private Func<long> _writerQueueLength = static () => 0;

    private TokenMeterInstruments(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(TokenMeterDiagnostics.MeterName);

        TokenUsage = meter.CreateHistogram<int>(
            "gen_ai.client.token.usage",
            unit: "{token}",
            description: "Number of input and output tokens used.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] });
        OperationDuration = meter.CreateHistogram<double>(
            "gen_ai.client.operation.duration",
            unit: "s",
            description: "Duration of GenAI operations.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        Cost = meter.CreateCounter<double>("tokenmeter.cost", unit: "{USD}", description: "Cost of metered calls in US dollars.");
        Calls = meter.CreateCounter<long>("tokenmeter.calls", unit: "{call}", description: "Metered calls, by status.");
        UnpricedCalls = meter.CreateCounter<long>("tokenmeter.calls.unpriced", unit: "{call}", description: "Metered calls whose model had no price.");

        WriterQueued = meter.CreateCounter<long>("tokenmeter.writer.queued", "{record}", "Usage records handed to the writer.");
        WriterWritten = meter.CreateCounter<long>("tokenmeter.writer.written", "{record}", "Usage records stored from the queue.");
        WriterSpooled = meter.CreateCounter<long>("tokenmeter.writer.spooled", "{record}", "Usage records written to the durable spool (store down, queue full, or shutdown).");
        WriterReplayed = meter.CreateCounter<long>("tokenmeter.writer.replayed", "{record}", "Usage records stored from the spool.");
        WriterFailed = meter.CreateCounter<long>("tokenmeter.writer.failed", "{batch}", "Failed attempts at storing a batch.");
        meter.CreateObservableGauge("tokenmeter.writer.queue.length", () => Volatile.Read(ref _writerQueueLength)(), "{record}", "Usage records waiting in memory to be stored.");

        BudgetRefusals = meter.CreateCounter<long>("tokenmeter.budget.refusals", "{request}", "Calls refused because a budget was reached.");
        BudgetCheckFailures = meter.CreateCounter<long>("tokenmeter.budget.check_failures", "{error}", "Budget checks that could not read budgets or usage.");

        Alerts = meter.CreateCounter<long>("tokenmeter.alerts", "{alert}", "Alert crossings fired.");
        AlertsMailed = meter.CreateCounter<long>("tokenmeter.alerts.mailed", "{alert}", "Alert emails the SMTP server accepted.");
        AlertMailFailed = meter.CreateCounter<long>("tokenmeter.alerts.mail_failed", "{alert}", "Alert emails given up after every attempt, or dropped.");
        WebhooksSent = meter.CreateCounter<long>("tokenmeter.webhooks.sent", "{event}", "Webhook events the receiver accepted.");
        WebhooksFailed = meter.CreateCounter<long>("tokenmeter.webhooks.failed", "{event}", "Webhook events given up after every attempt, or dropped.");
    }

    /// <summary><c>gen_ai.client.token.usage</c>: tokens per call, by <c>gen_ai.token.type</c>.</summary>
    public Histogram<int> TokenUsage { get; }

    /// <summary><c>gen_ai.client.operation.duration</c>: seconds per call.</summary>
    public Histogram<double> OperationDuration { get; }

    /// <summary><c>tokenmeter.cost</c>: US dollars of priced calls.</summary>
    public Counter<double> Cost { get; }

    /// <summary><c>tokenmeter.calls</c>: metered calls, by <c>tokenmeter.status</c>.</summary>
    public Counter<long> Calls { get; }

    /// <summary><c>tokenmeter.calls.unpriced</c>: calls with tokens but no price.</summary>
    public Counter<long> UnpricedCalls { get; }

    /// <summary><c>tokenmeter.writer.queued</c>.</summary>
    public Counter<long> WriterQueued { get; }

    /// <summary><c>tokenmeter.writer.written</c>.</summary>
    public Counter<long> WriterWritten { get; }

    /// <summary><c>tokenmeter.writer.spooled</c>.</summary>
    public Counter<long> WriterSpooled { get; }

    /// <summary><c>tokenmeter.writer.replayed</c>.</summary>
    public Counter<long> WriterReplayed { get; }

    /// <summary><c>tokenmeter.writer.failed</c>: failed store attempts (batches).</summary>
    public Counter<long> WriterFailed { get; }

    /// <summary><c>tokenmeter.budget.refusals</c>.</summary>
    public Counter<long> BudgetRefusals { get; }

    /// <summary><c>tokenmeter.budget.check_failures</c>.</summary>
    public Counter<long> BudgetCheckFailures { get; }

    /// <summary><c>tokenmeter.alerts</c>: alert crossings fired.</summary>
    public Counter<long> Alerts { get; }

    /// <summary><c>tokenmeter.alerts.mailed</c>.</summary>
    public Counter<long> AlertsMailed { get; }

    /// <summary><c>tokenmeter.alerts.mail_failed</c>.</summary>
    public Counter<long> AlertMailFailed { get; }

    /// <summary><c>tokenmeter.webhooks.sent</c>.</summary>
    public Counter<long> WebhooksSent { get; }

    /// <summary><c>tokenmeter.webhooks.failed</c>.</summary>
    public Counter<long> WebhooksFailed { get; }

    /// <summary>The instruments of <paramref name="meterFactory"/>'s meter, created on first use.</summary>
    public static TokenMeterInstruments For(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        return PerFactory.GetValue(meterFactory, static f => new TokenMeterInstruments(f));
    }

    /// <summary>Makes <c>tokenmeter.writer.queue.length</c> report <paramref name="queueLength"/> (the container's one writer).</summary>
    public void ObserveWriterQueue(Func<long> queueLength) => Volatile.Write(ref _writerQueueLength, queueLength);
}
