using System.Text.Json.Nodes;
using HomeworkApi.Hosting;
using TokenMeter.AspNetCore.Attribution;
using TokenMeter.AspNetCore.Budgets;
using TokenMeter.AspNetCore.RateLimits;

namespace HomeworkApi.Homework;

/// <summary>CONTRACT §3: the five homework routes.</summary>
internal static class HomeworkEndpoints
{
    public static void MapHomeworkEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").WithTags("Homework").RequireCors(HomeworkCors.PolicyName);
        Map(group, "/validate-image", HomeworkFeature.ValidateImage, typeof(ValidateImageBody), ValidateImageAsync, "Checks that a photo shows a readable homework problem.").Produces<JsonObject>();
        Map(group, "/analyze", HomeworkFeature.Analyze, typeof(AnalyzeBody), AnalyzeAsync, "Explains how to solve a problem, step by step.").Produces<JsonObject>();
        Map(group, "/hint", HomeworkFeature.Hint, typeof(HintBody), HintAsync, "Gives the next hint without giving the answer away.").Produces<JsonObject>();
        Map(group, "/verify", HomeworkFeature.Verify, typeof(VerifyBody), VerifyAsync, "Checks a student's answer and explains why.").Produces<JsonObject>();

        // stream:false answers {reply, usage}; stream:true answers server-sent events (TypedResults.ServerSentEvents),
        // each event's data one line of JSON: delta {content}, then done {reply, usage} or error (a problem object).
        Map(group, "/chat", HomeworkFeature.Chat, typeof(ChatBody), ChatAsync, "Tutoring chat about one problem; stream:true answers as server-sent events (delta …, then done or error).")
            .Produces<ChatReply>()
            .WithMetadata(new EventStreamMetadata("With stream:true: server-sent events, each event's data one line of JSON: delta {content} for each piece of text, then done {reply, usage}, or error (a problem object) when the model's stream breaks."));
    }

    private static RouteHandlerBuilder Map(RouteGroupBuilder group, string pattern, HomeworkFeature feature, Type body, Delegate handler, string summary)
    {
        // Filters run in the order added: check the body and the charged user, refuse users over a
        // per-minute rate limit (TokenMeter's, partitioned by the charged user from the body, else
        // the client address), open the usage scope for that user, then refuse users over budget —
        // all before the model is called. Both reserve this request's own worst case.
        // The route binds its body record once (BindAsync, source-generated JSON); the filter checks it with
        // the app's validation (so the framework's own validation filter is off here) and the record gives
        // the API document the schema.
        return group.MapPost(pattern, handler)
            .WithSummary(summary)
            .WithJsonBody(body)
            .DisableValidation()
            .AddEndpointFilter(new HomeworkRequestFilter(feature))
            .WithRateLimits(http => HomeworkRequestFilter.Get(http).ChargedUserId, HomeworkCall.Estimate)
            .WithUsageAttribution(Enrich)
            .WithBudgetEnforcement(HomeworkCall.Estimate)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status502BadGateway);
    }

    /// <summary>The charged user, session, problem and metadata tags of the checked body.</summary>
    private static ValueTask Enrich(UsageAttributionContext attribution)
    {
        var request = HomeworkRequestFilter.Get(attribution.HttpContext);
        attribution.UserId = request.ChargedUserId;
        attribution.SessionId = request.SessionId;
        attribution.ProblemId = request.ProblemId;
        if (request.Tags is not null)
        {
            foreach (var (key, value) in request.Tags)
            {
                attribution.Tags[key] = value;
            }
        }

        if (request.GradeLevel is not null)
        {
            attribution.Tags.TryAdd("gradeLevel", request.GradeLevel);
        }

        if (request.Subject is not null)
        {
            attribution.Tags.TryAdd("subject", request.Subject);
        }

        return ValueTask.CompletedTask;
    }

    private static Task<IResult> ValidateImageAsync(ValidateImageBody body, HttpContext http, HomeworkModelClient model, HomeworkSettings settings, CancellationToken cancellationToken)
    {
        var call = HomeworkCall.Get(http);
        return model.CompleteStructuredAsync(call.Model, call.Messages, call.Schema!, call.MaxOutputTokens, null, cancellationToken);
    }

    private static Task<IResult> AnalyzeAsync(AnalyzeBody body, HttpContext http, HomeworkModelClient model, HomeworkSettings settings, CancellationToken cancellationToken)
    {
        var call = HomeworkCall.Get(http);
        return model.CompleteStructuredAsync(call.Model, call.Messages, call.Schema!, call.MaxOutputTokens, null, cancellationToken);
    }

    private static Task<IResult> HintAsync(HintBody body, HttpContext http, HomeworkModelClient model, HomeworkSettings settings, CancellationToken cancellationToken)
    {
        var request = HomeworkRequestFilter.Get(http);
        var number = request.PreviousHints.Count + 1;
        var call = HomeworkCall.Get(http);
        return model.CompleteStructuredAsync(call.Model, call.Messages, call.Schema!, call.MaxOutputTokens, number, cancellationToken);
    }

    private static Task<IResult> VerifyAsync(VerifyBody body, HttpContext http, HomeworkModelClient model, HomeworkSettings settings, CancellationToken cancellationToken)
    {
        var call = HomeworkCall.Get(http);
        return model.CompleteStructuredAsync(call.Model, call.Messages, call.Schema!, call.MaxOutputTokens, null, cancellationToken);
    }

    private static Task<IResult> ChatAsync(ChatBody body, HttpContext http, HomeworkModelClient model, HomeworkSettings settings, CancellationToken cancellationToken)
    {
        var request = HomeworkRequestFilter.Get(http);
        var call = HomeworkCall.Get(http);
        return request.Stream
            ? model.StreamTextAsync(http, call.Model, call.Messages, call.MaxOutputTokens, cancellationToken)
            : model.CompleteTextAsync(call.Model, call.Messages, call.MaxOutputTokens, cancellationToken);
    }
}
