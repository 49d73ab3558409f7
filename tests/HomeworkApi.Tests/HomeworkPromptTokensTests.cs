using HomeworkApi.Homework;
using TokenMeter.Budgets;

namespace HomeworkApi.Tests;

/// <summary>The request path counts each fixed system prompt once per process; the count must equal counting every message.</summary>
public sealed class HomeworkPromptTokensTests
{
    public static TheoryData<string> Features => new() { "validate-image", "analyze", "hint", "verify", "chat" };

    [Theory]
    [MemberData(nameof(Features))]
    public void CountTokens_WithTheFixedPromptsCountedOnce_EqualsCountingEveryMessage(string feature)
    {
        var image = new HomeworkImage(null, null, new Uri("https://example.com/x.png"));
        var request = HomeworkRequest.From(HomeworkFeature.Chat, new ChatBody { Messages = [new("user", "Help me with 2x + 3 = 7"), new("assistant", "Sure."), new("user", "Go on")], ProblemContext = "Solve 2x + 3 = 7", GradeLevel = "8" });
        var problem = HomeworkRequest.From(HomeworkFeature.Verify, new VerifyBody { ProblemText = "Solve 2x + 3 = 7 for x.", Answer = "x = 2", Subject = "math" });
        var messages = feature switch
        {
            "validate-image" => HomeworkPrompts.ValidateImage(new HomeworkRequest { Feature = HomeworkFeature.ValidateImage, Image = image }),
            "analyze" => HomeworkPrompts.Analyze(new HomeworkRequest { Feature = HomeworkFeature.Analyze, ProblemText = "Solve 2x + 3 = 7", Image = image }),
            "hint" => HomeworkPrompts.Hint(HomeworkRequest.From(HomeworkFeature.Hint, new HintBody { ProblemText = "Solve 2x + 3 = 7 for x.", PreviousHints = ["Subtract 3."] })),
            "verify" => HomeworkPrompts.Verify(problem),
            _ => HomeworkPrompts.Chat(request),
        };

        Assert.Equal(UsageEstimator.CountTokens(messages), HomeworkPrompts.CountTokens(messages));
        Assert.Equal(UsageEstimator.CountTokens(messages), HomeworkPrompts.CountTokens(messages));
    }
}
