using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Testing.Scenarios;

/// <summary>Starts the loopback fake model answering the sample's prompts (JSON of the schema asked for) after a fixed delay.</summary>
public static class HomeworkModel
{
    public static readonly FakeUsage Usage = new() { PromptTokens = 120, CompletionTokens = 40, CachedTokens = 20 };

    public static async Task<FakeOpenAIServer> StartAsync(TimeSpan delay)
    {
        var server = await FakeOpenAIServer.StartAsync().ConfigureAwait(false);
        server.Responder = request => Reply(request, delay);
        return server;
    }

    public static FakeReply Reply(FakeRequest request, TimeSpan delay)
    {
        var schema = request.Json?["response_format"]?["json_schema"]?["name"]?.GetValue<string>();
        var text = schema switch
        {
            "image_check" => """{"isReadable":true,"isHomework":true,"subject":"math","detectedText":"2x + 3 = 7","issues":[],"message":"Looks good."}""",
            "problem_analysis" => """{"problemStatement":"Solve 2x + 3 = 7","subject":"math","topic":"linear equations","difficulty":"easy","steps":[{"title":"Subtract 3","explanation":"2x = 4"}],"finalAnswer":"x = 2","keyConcepts":["inverse operations"],"commonMistakes":["dividing before subtracting"]}""",
            "hint" => """{"hint":"What could you do to both sides to get 2x alone?","concept":"inverse operations","nextStep":"Undo the +3."}""",
            "answer_check" => """{"verdict":"correct","isCorrect":true,"explanation":"2(2) + 3 = 7.","mistake":"","suggestion":"Try a harder one."}""",
            _ => "Which number times two, plus three, makes seven?",
        };
        return new FakeReply { Text = text, Usage = Usage, Delay = delay };
    }
}
