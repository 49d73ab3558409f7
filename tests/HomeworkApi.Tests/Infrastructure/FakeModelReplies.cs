using System.Text.Json.Nodes;
using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>Answers the fake server's requests like a real model would answer the sample's prompts: JSON of the schema asked for, or text.</summary>
public static class FakeModelReplies
{
    public static FakeReply For(FakeRequest request, FakeUsage? usage = null)
    {
        var schema = request.Json?["response_format"]?["json_schema"]?["name"]?.GetValue<string>();
        var text = schema switch
        {
            "image_check" => """{"isReadable":true,"isHomework":true,"subject":"math","detectedText":"2x + 3 = 7","issues":[],"message":"Looks good."}""",
            "problem_analysis" => """{"problemStatement":"Solve 2x + 3 = 7","subject":"math","topic":"linear equations","difficulty":"easy","steps":[{"title":"Subtract 3","explanation":"2x = 4"},{"title":"Divide by 2","explanation":"x = 2"}],"finalAnswer":"x = 2","keyConcepts":["inverse operations"],"commonMistakes":["dividing before subtracting"]}""",
            "hint" => """{"hint":"What could you do to both sides to get 2x alone?","concept":"inverse operations","nextStep":"Undo the +3."}""",
            "answer_check" => """{"verdict":"correct","isCorrect":true,"explanation":"2(2) + 3 = 7.","mistake":"","suggestion":"Try a harder one."}""",
            _ => "Let's look at what the equation asks: which number times two, plus three, makes seven?",
        };
        return new FakeReply { Text = text, Usage = usage ?? new FakeUsage { PromptTokens = 120, CompletionTokens = 40, CachedTokens = 20 } };
    }

    /// <summary>The schema name the request asked for, or null for plain text.</summary>
    public static string? Schema(FakeRequest request) => request.Json?["response_format"]?["json_schema"]?["name"]?.GetValue<string>();

    public static JsonArray Messages(FakeRequest request) => request.Json?["messages"] as JsonArray ?? [];
}
