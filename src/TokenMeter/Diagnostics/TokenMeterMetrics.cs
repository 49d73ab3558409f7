using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using TokenMeter.Pricing;

namespace TokenMeter.Diagnostics;

/// <summary>
/// Instruments for metered calls on the shared <c>TokenMeter</c> meter, named after the
/// OpenTelemetry GenAI conventions where one exists.
/// </summary>
internal sealed class TokenMeterMetrics
{
    /// <summary>The name of TokenMeter's meter.</summary>
    public const string MeterName = "TokenMeter";

    private readonly Histogram<int> _tokenUsage;
    private readonly Histogram<double> _duration;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _calls;
    private readonly Counter<long> _unpriced;
    private readonly IOptionsMonitor<TokenMeterOptions> _options;

    public TokenMeterMetrics(IMeterFactory meterFactory, IOptionsMonitor<TokenMeterOptions> options)
    {
        _options = options;
        var meter = meterFactory.Create(MeterName);
        _tokenUsage = meter.CreateHistogram<int>(
            "gen_ai.client.token.usage",
            unit: "{token}",
            description: "Number of input and output tokens used.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] });
        _duration = meter.CreateHistogram<double>(
            "gen_ai.client.operation.duration",
            unit: "s",
            description: "Duration of GenAI operations.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _cost = meter.CreateCounter<double>("tokenmeter.cost", unit: "{USD}", description: "Cost of metered calls in US dollars.");
        _calls = meter.CreateCounter<long>("tokenmeter.calls", unit: "{call}", description: "Metered calls, by status.");
        _unpriced = meter.CreateCounter<long>("tokenmeter.calls.unpriced", unit: "{call}", description: "Metered calls whose model had no price.");
    }

    public void Record(UsageRecord record)
    {
        // No listener on any instrument (the usual case without an exporter): skip building tags.
        if (!_calls.Enabled && !_cost.Enabled && !_unpriced.Enabled && !_tokenUsage.Enabled && !_duration.Enabled)
        {
            return;
        }

        var model = record.Model ?? record.RequestModel;
        var common = new TagList
        {
            { "gen_ai.operation.name", record.Operation },
            { "gen_ai.provider.name", "openai" },
            { "gen_ai.request.model", record.RequestModel },
            { "gen_ai.response.model", model },
        };
        if (record.Endpoint is not null)
        {
            common.Add("tokenmeter.endpoint", record.Endpoint);
        }

        if (_options.CurrentValue.EmitTokenUsageHistogram && record.Status is UsageStatus.Ok or UsageStatus.Estimated)
        {
            var input = common;
            input.Add("gen_ai.token.type", "input");
            _tokenUsage.Record((int)Math.Min(int.MaxValue, record.InputTokens), input);
            var output = common;
            output.Add("gen_ai.token.type", "output");
            _tokenUsage.Record((int)Math.Min(int.MaxValue, record.OutputTokens), output);
            _duration.Record(record.DurationMs / 1000.0, common);
        }

        var source = CostSourceNames.Of(CostSourceNames.Effective(record));
        if (record.CostUsd is { } cost)
        {
            var withSource = common;
            withSource.Add("tokenmeter.cost_source", source);
            _cost.Add((double)cost, withSource);
        }
        else if (record.InputTokens + record.OutputTokens > 0)
        {
            _unpriced.Add(1, common);
        }

        var withStatus = common;
        withStatus.Add("tokenmeter.status", StatusName(record.Status));
        withStatus.Add("tokenmeter.cost_source", source);
        _calls.Add(1, withStatus);
    }

    private static string StatusName(UsageStatus status) => status switch
    {
        UsageStatus.Ok => "ok",
        UsageStatus.HttpError => "http_error",
        UsageStatus.TransportError => "transport_error",
        UsageStatus.Cancelled => "cancelled",
        UsageStatus.UsageMissing => "usage_missing",
        UsageStatus.Estimated => "estimated",
        _ => "unknown",
    };
}
