using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Pricing;

namespace TokenMeter.Metering;

/// <summary>
/// Records each metered call on the shared instruments (<see cref="TokenMeterInstruments"/>):
/// tokens and duration as the OpenTelemetry GenAI conventions name them, cost, calls by status.
/// </summary>
internal sealed class TokenMeterMetrics
{
    private readonly Histogram<int> _tokenUsage;
    private readonly Histogram<double> _duration;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _calls;
    private readonly Counter<long> _unpriced;
    private readonly IOptionsMonitor<TokenMeterOptions> _options;

    public TokenMeterMetrics(IMeterFactory meterFactory, IOptionsMonitor<TokenMeterOptions> options)
    {
        _options = options;
        var instruments = TokenMeterInstruments.For(meterFactory);
        _tokenUsage = instruments.TokenUsage;
        _duration = instruments.OperationDuration;
        _cost = instruments.Cost;
        _calls = instruments.Calls;
        _unpriced = instruments.UnpricedCalls;
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
        withStatus.Add("tokenmeter.status", UsageStatusNames.GetName(record.Status));
        withStatus.Add("tokenmeter.cost_source", source);
        _calls.Add(1, withStatus);
    }
}
