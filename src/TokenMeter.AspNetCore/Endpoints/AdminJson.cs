using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using TokenMeter.Billing;
using TokenMeter.Querying;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary>
/// The admin API's JSON: the core's read-model rows, written by a source-generated context. A row's
/// <see cref="UsageFigures"/> are written inline, under the names each answer has always used
/// (<see cref="Views"/>); a row's other figures (e.g. <c>thisMonth</c>) are written as an object.
/// </summary>
internal static class AdminJson
{
    /// <summary>The context's metadata with the figure views applied.</summary>
    public static IJsonTypeInfoResolver Resolver { get; } = AdminJsonContext.Default.WithAddedModifier(ApplyView);

    /// <summary>Web defaults (camelCase), independent of how the app configured its own JSON.</summary>
    public static JsonSerializerOptions Options { get; } = new(AdminJsonContext.Default.Options) { TypeInfoResolver = Resolver };

    /// <summary>Puts the admin API's metadata first in <paramref name="options"/>' resolver chain, once.</summary>
    /// <param name="options">The app's JSON options.</param>
    public static void AddTo(JsonSerializerOptions options)
    {
        if (!options.TypeInfoResolverChain.Contains(Resolver))
        {
            options.TypeInfoResolverChain.Insert(0, Resolver);
        }
    }

    /// <summary>Every measure of <see cref="UsageFigures"/>, by its JSON name, in declaration order, except that cache writes stand beside cached input.</summary>
    private static readonly Dictionary<string, JsonPropertyInfo> Measures = BesideCachedInput(
        AdminJsonContext.Default.UsageFigures.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal));

    // Named by the answers that use them; "name:measure" writes a measure under another name.
    private static readonly Field[] Short = Only("calls", "tokens:totalTokens", "costUsd");
    private static readonly Field[] Totals = Only("totalCalls:calls", "totalTokens", "totalCostUsd:costUsd");
    private static readonly Field[] ByEndpoint = Only("calls", "totalTokens", "totalCostUsd:costUsd");
    private static readonly Field[] Trend = Only("calls", "inputTokens", "outputTokens", "totalTokens", "costUsd");

    /// <summary>
    /// How each type's figures appear. Rows that list every measure (<see cref="All"/>) carry a new
    /// measure of <see cref="UsageFigures"/> without a change here.
    /// </summary>
    private static readonly Dictionary<Type, View> Views = new()
    {
        [typeof(UsageFigures)] = new(Short),
        [typeof(UsageStats)] = new(Totals),
        [typeof(UsagePeriodTotals)] = new(Short),
        [typeof(UserDailyUsage)] = new(Short, "userId"),
        [typeof(UserEndpointUsage)] = new(ByEndpoint, "userId"),
        [typeof(EndpointUsage)] = new([
            .. Only("calls", "totalTokens"),
            new("avgTokensPerCall", typeof(decimal), f => f.Calls == 0 ? 0m : Math.Round((decimal)f.TotalTokens / f.Calls, 2)),
            .. Only("totalCostUsd:costUsd"),
            new("avgCostPerCall", typeof(decimal), f => f.Calls == 0 ? 0m : Math.Round(f.CostUsd / f.Calls, 10)),
        ]),
        [typeof(StatementLine)] = new(AllBut("reasoningTokens")),
        [typeof(UserSummaryItem)] = new(All(("totalCalls", "calls"), ("totalCostUsd", "costUsd"))),
        [typeof(UserDetailResponse)] = new(All(("totalCalls", "calls"), ("totalCostUsd", "costUsd"))),
        [typeof(MeResponse)] = new(Totals),
        [typeof(MyEndpointItem)] = new(ByEndpoint),
        [typeof(DailyItem)] = new(Trend),
        [typeof(MonthlyItem)] = new(Trend),
    };

    private static void ApplyView(JsonTypeInfo info)
    {
        if (info.Kind != JsonTypeInfoKind.Object || !Views.TryGetValue(info.Type, out var view))
        {
            return;
        }

        var properties = info.Properties;
        if (info.Type == typeof(UsageFigures))
        {
            properties.Clear();
            AddFields(info, view.Fields, 0, static self => self);
            return;
        }

        for (var i = properties.Count - 1; i >= 0; i--)
        {
            var property = properties[i];
            if (view.Hidden.Contains(property.Name, StringComparer.Ordinal))
            {
                properties.RemoveAt(i);
            }
            else if (property.PropertyType == typeof(UsageFigures) && property.Name == "figures")
            {
                properties.RemoveAt(i);
                AddFields(info, view.Fields, i, property.Get!);
            }
        }
    }

    private static void AddFields(JsonTypeInfo info, Field[] fields, int at, Func<object, object?> figuresOf)
    {
        foreach (var field in fields)
        {
            var property = info.CreateJsonPropertyInfo(field.Type, field.Name);
            property.Get = owner => field.Read((UsageFigures)figuresOf(owner)!);
            info.Properties.Insert(at++, property);
        }
    }

    private static Dictionary<string, JsonPropertyInfo> BesideCachedInput(Dictionary<string, JsonPropertyInfo> measures)
    {
        var ordered = new Dictionary<string, JsonPropertyInfo>(StringComparer.Ordinal);
        foreach (var (name, property) in measures)
        {
            if (name == "cacheWriteTokens")
            {
                continue;
            }

            ordered[name] = property;
            if (name == "cachedInputTokens" && measures.TryGetValue("cacheWriteTokens", out var cacheWrite))
            {
                ordered["cacheWriteTokens"] = cacheWrite;
            }
        }

        return ordered;
    }

    private static Field[] Only(params string[] names) => [.. names.Select(name =>
    {
        var parts = name.Split(':');
        return Measure(parts[0], parts[^1]);
    })];

    private static Field[] All(params (string Name, string Measure)[] renamed) => [.. Measures.Keys.Select(measure =>
        Measure(renamed.FirstOrDefault(r => r.Measure == measure).Name ?? measure, measure))];

    private static Field[] AllBut(string measure) => [.. All().Where(f => f.Name != measure)];

    private static Field Measure(string name, string measure)
    {
        var property = Measures.TryGetValue(measure, out var p)
            ? p
            : throw new InvalidOperationException($"UsageFigures has no measure '{measure}'.");
        var get = property.Get!;
        return new Field(name, property.PropertyType, figures => get(figures));
    }

    /// <summary>One JSON property made from a row's figures.</summary>
    private sealed record Field(string Name, Type Type, Func<UsageFigures, object?> Read);

    /// <summary>The figure fields of a type (in place of its <c>figures</c>) and the properties it leaves out.</summary>
    private sealed record View(Field[] Fields, params string[] Hidden);
}

/// <summary>Every type the admin API writes or reads as JSON.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(UsageStats))]
[JsonSerializable(typeof(SummaryPageResponse))]
[JsonSerializable(typeof(UserDetailResponse))]
[JsonSerializable(typeof(ItemsResponse<EndpointUsage>))]
[JsonSerializable(typeof(ItemsResponse<DailyItem>))]
[JsonSerializable(typeof(ItemsResponse<MonthlyItem>))]
[JsonSerializable(typeof(MeResponse))]
[JsonSerializable(typeof(BudgetsResponse))]
[JsonSerializable(typeof(BudgetLimitItem))]
[JsonSerializable(typeof(UserBudgetItem))]
[JsonSerializable(typeof(StatementsResponse))]
[JsonSerializable(typeof(ForecastResponse))]
[JsonSerializable(typeof(UserForecastsResponse))]
[JsonSerializable(typeof(SendReportResponse))]
[JsonSerializable(typeof(RepriceResponse))]
[JsonSerializable(typeof(RepricingsResponse))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
