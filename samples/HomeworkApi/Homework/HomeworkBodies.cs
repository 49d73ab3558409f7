using System.ComponentModel;
using System.ComponentModel.DataAnnotations;

namespace HomeworkApi.Homework;

/// <summary>
/// The JSON bodies of the homework routes, as the API document shows them. The filter reads each body
/// once into a <see cref="HomeworkRequest"/> with its own checks (their 400 sentences name the field).
/// </summary>
internal abstract record HomeworkBody
{
    [Description("The student to charge: only an admin (a backend acting for a student) may name one; a string or a whole number. Leave it out to charge the signed-in user.")]
    public string? UserId { get; init; }

    [Description("The student's grade level (a string or a number, at most 40 characters); recorded as a tag.")]
    public string? GradeLevel { get; init; }

    [Description("The subject, e.g. math; recorded as a tag.")]
    [MaxLength(100)]
    public string? Subject { get; init; }

    [Description("Groups calls of one study session (a string or a number).")]
    [MaxLength(200)]
    public string? SessionId { get; init; }

    [Description("Groups calls about one problem (a string or a number).")]
    [MaxLength(200)]
    public string? ProblemId { get; init; }

    [Description("Up to 20 tags recorded with the call: keys of 1 to 100 characters, values of at most 1,000.")]
    public Dictionary<string, string>? Metadata { get; init; }
}

/// <summary>An image, as base64 (or a data URI) or as a URL: one of the two.</summary>
internal abstract record ImageBody : HomeworkBody
{
    [Description("A PNG, JPEG, GIF or WebP image of at most 10 MiB, as base64 or a data:image/...;base64, URI.")]
    public string? ImageBase64 { get; init; }

    [Description("An absolute http(s) URL of the image, or a data: URI.")]
    [MaxLength(4096)]
    public string? ImageUrl { get; init; }
}

/// <summary>The body of <c>POST /api/validate-image</c>: <c>imageBase64</c> or <c>imageUrl</c>.</summary>
internal sealed record ValidateImageBody : ImageBody;

/// <summary>The body of <c>POST /api/analyze</c>: the problem as text, as an image, or both.</summary>
internal sealed record AnalyzeBody : ImageBody
{
    [Description("The problem as text (at least one of problemText, imageBase64, imageUrl).")]
    [MaxLength(20_000)]
    public string? ProblemText { get; init; }
}

/// <summary>The body of <c>POST /api/hint</c>.</summary>
internal sealed record HintBody : HomeworkBody
{
    [Required]
    [MaxLength(20_000)]
    public string? ProblemText { get; init; }

    [Description("The hints given so far (at most 20); the next one goes further.")]
    [MaxLength(20)]
    public List<string>? PreviousHints { get; init; }
}

/// <summary>The body of <c>POST /api/verify</c>.</summary>
internal sealed record VerifyBody : HomeworkBody
{
    [Required]
    [MaxLength(20_000)]
    public string? ProblemText { get; init; }

    [Required]
    [Description("The student's answer.")]
    [MaxLength(20_000)]
    public string? Answer { get; init; }
}

/// <summary>The body of <c>POST /api/chat</c>.</summary>
internal sealed record ChatBody : HomeworkBody
{
    [Required]
    [Description("The conversation so far, oldest first (1 to 50 turns); the last is the student's.")]
    [MinLength(1)]
    [MaxLength(50)]
    public List<ChatTurnBody>? Messages { get; init; }

    [Description("The problem the chat is about.")]
    [MaxLength(20_000)]
    public string? ProblemContext { get; init; }

    [Description("true: answer as server-sent events (delta … done).")]
    public bool? Stream { get; init; }
}

/// <summary>One turn of <see cref="ChatBody.Messages"/>.</summary>
internal sealed record ChatTurnBody(
    [property: Description("user or assistant.")] string Role,
    [property: MaxLength(20_000)] string Content);
