using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TokenMeter.Diagnostics;

namespace TokenMeter.Pricing;

/// <summary>Prices records over the <see cref="PriceTable"/>, warning once per model that has no price.</summary>
internal sealed class UsagePricer : IUsagePricer
{
    private readonly PriceTable _table;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, bool> _warned = new(StringComparer.OrdinalIgnoreCase);

    public UsagePricer(PriceTable table, ILogger<UsagePricer>? logger = null)
    {
        _table = table;
        _logger = logger ?? (ILogger)NullLogger.Instance;
    }

    public UsageRecord Price(UsageRecord record)
    {
        var priced = _table.Price(record);
        if (priced.PriceId is null)
        {
            var model = record.Model ?? record.RequestModel ?? string.Empty;
            if (_warned.TryAdd(model, true))
            {
                Log.ModelUnpriced(_logger, model);
            }
        }

        return priced;
    }

    /// <summary>Builds the table from the built-in prices (unless turned off) and the configured ones.</summary>
    public static PriceTable CreateTable(PricingOptions options)
    {
        var configured = options.Models.Select(m => m.ToModelPrice());
        return options.IncludeDefaults ? PriceTable.Default.With(configured) : new PriceTable(configured);
    }
}
