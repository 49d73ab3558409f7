using System.Text;
using System.Text.Json;
using HomeworkApi.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using OpenAI.Chat;
using TokenMeter.Attribution;

namespace HomeworkApi.Homework;

/// <summary>
/// Streams a chat reply as server-sent events: <c>event: delta</c> with <c>{"content":"..."}</c>
/// for each piece of text, then <c>event: done</c> with <c>{"reply":"...","usage":{...}}</c> once the
/// model's stream has ended and its usage is recorded (or <c>event: error</c> with a problem object
/// when the model's stream breaks).
/// </summary>
internal sealed class ChatStreamResult(
    IAsyncEnumerator<StreamingChatCompletionUpdate> updates,
    bool hasFirst,
    UsageScope scope,
    HomeworkModelClient owner,
    string model) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        var cancellationToken = httpContext.RequestAborted;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        httpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

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
                        await WriteEventAsync(response, "delta", new { content = part.Text }, cancellationToken);
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
            await WriteEventAsync(response, "error", new { type = "about:blank", title = "The model endpoint failed.", status = 502, detail = failure }, cancellationToken);
            return;
        }

        if (reply.Length == 0)
        {
            Log.ModelMalformed(httpContext.RequestServices.GetRequiredService<ILogger<ChatStreamResult>>(), model, "the streamed reply has no text");
        }

        await WriteEventAsync(response, "done", new ChatReply(reply.ToString(), UsageDto.From(scope.Totals)), cancellationToken);
    }

    private static async Task WriteEventAsync<T>(HttpResponse response, string name, T data, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(data, HomeworkModelClient.Json);
        await response.WriteAsync("event: " + name + "\ndata: " + json + "\n\n", cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
