using System.Text.Json.Nodes;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>Reads a <c>text/event-stream</c> body into (event, data) pairs.</summary>
public static class ServerSentEvents
{
    public static async Task<List<(string Event, JsonObject Data)>> ReadAsync(HttpResponseMessage response)
    {
        var events = new List<(string, JsonObject)>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? name = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((name ?? "message", (JsonObject)JsonNode.Parse(line["data: ".Length..])!));
                name = null;
            }
        }

        return events;
    }
}
