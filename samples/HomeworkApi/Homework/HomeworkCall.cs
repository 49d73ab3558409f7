using OpenAI.Chat;
using TokenMeter.Budgets;

namespace HomeworkApi.Homework;

/// <summary>
/// The model call a homework request makes — model, messages, response schema, output cap — built
/// once per request from the checked body, so the budget and rate-limit checks reserve this very
/// call's worst case (prompt and schema tokens counted, the output cap in full, at the model's
/// prices) and the handler then sends exactly it.
/// </summary>
internal sealed record HomeworkCall(string Model, List<ChatMessage> Messages, string? Schema, int MaxOutputTokens)
{
    private static readonly object ItemKey = new();
    private static readonly object EstimateKey = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> SchemaTokens = new(StringComparer.Ordinal);

    /// <summary>The request's call, built on first use.</summary>
    public static HomeworkCall Get(HttpContext http)
    {
        if (http.Items[ItemKey] is HomeworkCall call)
        {
            return call;
        }

        var request = HomeworkRequestFilter.Get(http);
        var models = http.RequestServices.GetRequiredService<Hosting.HomeworkSettings>().Models;
        call = request.Feature switch
        {
            HomeworkFeature.ValidateImage => new HomeworkCall(models.ValidateImage, HomeworkPrompts.ValidateImage(request), HomeworkPrompts.ImageCheckSchema, 600),
            HomeworkFeature.Analyze => new HomeworkCall(models.Analyze, HomeworkPrompts.Analyze(request), HomeworkPrompts.AnalysisSchema, 2000),
            HomeworkFeature.Hint => new HomeworkCall(models.Hint, HomeworkPrompts.Hint(request), HomeworkPrompts.HintSchema, 400),
            HomeworkFeature.Verify => new HomeworkCall(models.Verify, HomeworkPrompts.Verify(request), HomeworkPrompts.AnswerCheckSchema, 1000),
            _ => new HomeworkCall(models.Chat, HomeworkPrompts.Chat(request), null, 800),
        };
        http.Items[ItemKey] = call;
        return call;
    }

    /// <summary>The worst case of the request's call (the filters' estimate).</summary>
    public static BudgetEstimate Estimate(EndpointFilterInvocationContext context)
    {
        var http = context.HttpContext;
        if (http.Items[EstimateKey] is BudgetEstimate estimate)
        {
            return estimate;
        }

        var call = Get(http);
        var schemaTokens = call.Schema is null ? 0 : SchemaTokens.GetOrAdd(call.Schema, static name => UsageEstimator.CountTokens(HomeworkPrompts.SchemaText(name)));
        estimate = http.RequestServices.GetRequiredService<UsageEstimator>()
            .Estimate(call.Model, HomeworkPrompts.CountTokens(call.Messages) + schemaTokens, call.MaxOutputTokens);
        http.Items[EstimateKey] = estimate;
        return estimate;
    }
}
