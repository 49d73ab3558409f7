using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TokenMeter.Diagnostics;

namespace TokenMeter.Pricing;

/// <summary>Prices records from the registered <see cref="IPriceSource"/>, warning once per model and tier that has no price.</summary>
internal sealed class UsagePricer : IUsagePricer
{
    private readonly IPriceSource _source;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, bool> _warned = new(StringComparer.OrdinalIgnoreCase);

    public UsagePricer(IPriceSource source, ILogger<UsagePricer>? logger = null)
    {
        _source = source;
        _logger = logger ?? (ILogger)NullLogger.Instance;
    }

    public UsageRecord Price(UsageRecord record)
    {
        var priced = RecordPricing.Price(_source, record);
        if (priced.PriceId is null)
        {
            var model = record.Model ?? record.RequestModel ?? string.Empty;
            var tier = record.ServiceTier ?? "default";
            if (_warned.Count < 1024 && _warned.TryAdd(model + "|" + tier, true))
            {
                Log.ModelUnpriced(_logger, model, tier);
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
