namespace TokenMeter.Testing.FakeOpenAI;

/// <summary>A request the fake server received, for assertions.</summary>
/// <param name="Method">HTTP method.</param>
/// <param name="Path">Path, e.g. <c>/v1/chat/completions</c>.</param>
/// <param name="ContentType">Content type of the body.</param>
/// <param name="Body">The body as text (JSON requests), or empty for multipart.</param>
/// <param name="Form">Form fields of a multipart request (files excluded).</param>
/// <param name="Headers">Request headers (the Authorization header is kept so tests can check it was sent).</param>
public sealed record FakeRequest(
    string Method,
    string Path,
    string? ContentType,
    string Body,
    IReadOnlyDictionary<string, string> Form,
    IReadOnlyDictionary<string, string> Headers)
{
    /// <summary>The body parsed as JSON, or null when it is not JSON.</summary>
    public System.Text.Json.Nodes.JsonNode? Json
    {
        get
        {
            try
            {
                return Body.Length == 0 ? null : System.Text.Json.Nodes.JsonNode.Parse(Body);
            }
            catch (System.Text.Json.JsonException)
            {
                return null;
            }
        }
    }

    /// <summary>The <c>model</c> the request asked for (JSON body or form field).</summary>
    public string? Model => Form.TryGetValue("model", out var m) ? m : Json?["model"]?.GetValue<string>();

    /// <summary>The <c>user</c> field of a JSON body.</summary>
    public string? User => Json?["user"]?.GetValue<string>();
}
