using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using HomeworkApi.Diagnostics;
using OpenAI.Chat;
using TokenMeter.Attribution;

namespace HomeworkApi.Homework;

/// <summary>
/// A chat reply as server-sent events (<see cref="TypedResults.ServerSentEvents{T}(IAsyncEnumerable{SseItem{T}})"/>):
/// <c>event: delta</c> with <c>{"content":"..."}</c> for each piece of text, then <c>event: done</c> with
/// <c>{"reply":"...","usage":{...}}</c> once the model's stream has ended and its usage is recorded (or
/// <c>event: error</c> with a problem object when the model's stream breaks). Each event's data is one
/// line of JSON.
/// </summary>
internal static class ChatStream
{
    public static IResult Result(HttpContext http, IAsyncEnumerator<StreamingChatCompletionUpdate> updates, bool hasFirst, UsageScope scope, HomeworkModelClient owner, string model)
    {
        // Proxies (nginx) pass each event on at once instead of buffering the response.
        http.Response.Headers["X-Accel-Buffering"] = "no";
        return TypedResults.ServerSentEvents(EventsAsync(http, updates, hasFirst, scope, owner, model, http.RequestAborted));
    }

    private static async IAsyncEnumerable<SseItem<string>> EventsAsync(
        HttpContext http,
        IAsyncEnumerator<StreamingChatCompletionUpdate> updates,
        bool hasFirst,
        UsageScope scope,
        HomeworkModelClient owner,
        string model,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reply = new StringBuilder();
        string? failure = null;
        try
        {
            var more = hasFirst;
            while (more)
            {
                foreach (var part in updates.Current.ContentUpdate)
                {
                    if (part.Kind == ChatMessageContentPartKind.Text && part.Text.Length > 0)
                    {
                        reply.Append(part.Text);
                        yield return Event("delta", new ChatDelta(part.Text));
                    }
                }

                try
                {
                    more = await updates.MoveNextAsync();
                }
                catch (Exception ex) when (owner.DescribeFailure(ex, model, cancellationToken) is { } detail)
                {
                    failure = detail;
                    more = false;
                }
            }
        }
        finally
        {
            // Ends the model's stream: the metering records the call now, into this scope.
            await updates.DisposeAsync();
        }

        if (failure is not null)
        {
            yield return Event("error", new ChatStreamError("about:blank", "The model endpoint failed.", StatusCodes.Status502BadGateway, failure));
            yield break;
        }

        if (reply.Length == 0)
        {
            Log.ModelMalformed(http.RequestServices.GetRequiredService<ILogger<ChatReply>>(), model, "the streamed reply has no text");
        }

        yield return Event("done", new ChatReply(reply.ToString(), UsageDto.From(scope.Totals)));
    }

    private static SseItem<string> Event<T>(string name, T data) => new(JsonSerializer.Serialize(data, HomeworkModelClient.Json), name);
}

/// <summary>The data of a <c>delta</c> event.</summary>
internal sealed record ChatDelta(string Content);

/// <summary>The data of an <c>error</c> event: a problem object.</summary>
internal sealed record ChatStreamError(string Type, string Title, int Status, string Detail);
