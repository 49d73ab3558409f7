using System.Text.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Homework;

namespace HomeworkApi.Simulation;

/// <summary>
/// What the simulated model says: deterministic, shaped like a real model's reply to the sample's
/// prompts (the JSON schemas the features ask for, or plain tutoring text for chat), and honest
/// that it is a simulation — it never pretends to have solved anything.
/// </summary>
internal static class SimulatedReplies
{
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };

    public static string Create(string? schemaName, IReadOnlyList<SimulatedMessage> messages)
    {
        var user = messages.LastOrDefault(m => m.Role == "user");
        var text = user?.Text ?? string.Empty;
        var hasImage = messages.Any(m => m.Images.Count > 0);
        var grade = Field(text, "Grade level:") is { } g && g != "not given" ? g : null;
        var subject = Field(text, "Subject:") is { } s && s != "not given" ? s : null;
        var problem = Section(text, "Problem:\n") ?? Section(text, "Problem:") ?? string.Empty;
        var shortProblem = Shorten(problem.Split("\n\nStudent's answer:", 2)[0], 160);
        var audience = grade is null ? "a middle-school student" : "grade " + grade;

        JsonObject reply = schemaName switch
        {
            HomeworkPrompts.ImageCheckSchema => new JsonObject
            {
                ["isReadable"] = hasImage,
                ["isHomework"] = hasImage,
                ["subject"] = subject ?? "unknown",
                ["detectedText"] = "(simulated model: the image was received but not read)",
                ["issues"] = new JsonArray(),
                ["message"] = "The photo looks usable. (Simulated model: configure OpenAI:ApiKey to check real photos.)",
            },
            HomeworkPrompts.AnalysisSchema => new JsonObject
            {
                ["problemStatement"] = problem.Length > 0 && problem != "see the image." ? Shorten(problem, 500) : "(simulated model: the problem in the image was not read)",
                ["subject"] = subject ?? GuessSubject(problem),
                ["topic"] = "general problem solving",
                ["difficulty"] = "medium",
                ["steps"] = new JsonArray(
                    Step("Understand the question", $"Read \"{shortProblem}\" and underline what is given and what is asked, in words {audience} would use."),
                    Step("Choose a method", "Pick the rule, formula or strategy that connects what is given to what is asked, and write it down before using it."),
                    Step("Work it out", "Apply the method one small step at a time, writing every intermediate result so each step can be checked."),
                    Step("Check the result", "Put the result back into the question, check the units, and ask whether the size of the answer makes sense.")),
                ["finalAnswer"] = "(simulated model: no real answer is computed; configure OpenAI:ApiKey for real analyses)",
                ["keyConcepts"] = new JsonArray("reading the problem carefully", "choosing a method", "checking the result"),
                ["commonMistakes"] = new JsonArray("skipping the check at the end", "copying a number wrong from the problem"),
            },
            HomeworkPrompts.HintSchema => Hint(text, shortProblem),
            HomeworkPrompts.AnswerCheckSchema => new JsonObject
            {
                ["verdict"] = "unclear",
                ["isCorrect"] = false,
                ["explanation"] = $"The simulated model cannot judge answers. A real model would solve \"{shortProblem}\" itself, compare it with the answer \"{Shorten(Section(text, "Student's answer:\n") ?? string.Empty, 80)}\", and explain any difference for {audience}.",
                ["mistake"] = string.Empty,
                ["suggestion"] = "Check the answer by substituting it back into the problem.",
            },
            null => new JsonObject(),
            _ => new JsonObject { ["answer"] = "(simulated model)" },
        };

        if (schemaName is null)
        {
            return Chat(messages, text);
        }

        return reply.ToJsonString(Compact);
    }

    private static JsonObject Hint(string text, string shortProblem)
    {
        var number = 1;
        var marker = "This is hint number ";
        var at = text.IndexOf(marker, StringComparison.Ordinal);
        if (at >= 0)
        {
            var digits = new string(text[(at + marker.Length)..].TakeWhile(char.IsAsciiDigit).ToArray());
            _ = int.TryParse(digits, out number);
        }

        var (hint, concept, next) = number switch
        {
            1 => ($"Start by asking yourself: what exactly does \"{shortProblem}\" want you to find? Write the unknown down in your own words.", "what is asked", "Name the unknown and list the numbers you are given."),
            2 => ("Now look for a rule or formula that links the numbers you are given to the unknown. Which one have you used on similar problems?", "choosing a method", "Write the rule down without putting numbers in yet."),
            3 => ("Put the given numbers into the rule you chose and simplify one step at a time. What do you get after the first step?", "applying the method", "Do the first calculation and check it before going on."),
            _ => ($"You are close. Finish the last step yourself, then check it by putting your result back into the problem (hint {number}).", "checking the result", "Substitute your result into the problem and see whether it fits."),
        };
        return new JsonObject { ["hint"] = hint, ["concept"] = concept, ["nextStep"] = next };
    }

    private static string Chat(IReadOnlyList<SimulatedMessage> messages, string lastUser)
    {
        var context = messages.Where(m => m.Role == "system").Select(m => Section(m.Text, "Problem context:\n")).LastOrDefault(c => c is not null);
        var turns = messages.Count(m => m.Role == "user");
        var about = context is null || context.StartsWith("not given", StringComparison.Ordinal) ? "your problem" : $"\"{Shorten(context, 80)}\"";
        return turns switch
        {
            1 => $"Good question! Let's work on {about} together. You said: \"{Shorten(lastUser, 100)}\". What do you already know, and which part feels unclear? (This is the simulated tutor; set OpenAI:ApiKey for real answers.)",
            _ => $"Nice, let's keep going on {about}. Try the next small step yourself and tell me what you get; I'll check your reasoning. (Simulated tutor, turn {turns}.)",
        };
    }

    private static JsonObject Step(string title, string explanation) => new() { ["title"] = title, ["explanation"] = explanation };

    private static string GuessSubject(string problem)
    {
        var p = problem.ToLowerInvariant();
        if (p.Any(char.IsAsciiDigit) || p.Contains('=', StringComparison.Ordinal) || p.Contains("solve", StringComparison.Ordinal))
        {
            return "math";
        }

        return p.Contains("atom", StringComparison.Ordinal) || p.Contains("force", StringComparison.Ordinal) || p.Contains("cell", StringComparison.Ordinal) ? "science" : "unknown";
    }

    private static string? Field(string text, string label)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(label, StringComparison.Ordinal))
            {
                return line[label.Length..].Trim();
            }
        }

        return null;
    }

    private static string? Section(string text, string label)
    {
        var at = text.IndexOf(label, StringComparison.Ordinal);
        return at < 0 ? null : text[(at + label.Length)..].Trim();
    }

    private static string Shorten(string text, int max)
    {
        var oneLine = string.Join(' ', text.Split((char[])['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim();
        return oneLine.Length <= max ? oneLine : oneLine[..(max - 1)] + "…";
    }
}
