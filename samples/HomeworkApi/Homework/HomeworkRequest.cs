namespace HomeworkApi.Homework;

/// <summary>The five homework features (CONTRACT §3).</summary>
internal enum HomeworkFeature
{
    ValidateImage,
    Analyze,
    Hint,
    Verify,
    Chat,
}

/// <summary>A homework request, from its checked body: texts trimmed, empty hints dropped, the image decoded.</summary>
internal sealed class HomeworkRequest
{
    public static HomeworkRequest From(HomeworkFeature feature, HomeworkBody body) => new()
    {
        Feature = feature,
        BodyUserId = body.UserId?.Trim(),
        GradeLevel = body.GradeLevel?.Trim(),
        Subject = body.Subject?.Trim(),
        SessionId = body.SessionId?.Trim(),
        ProblemId = body.ProblemId?.Trim(),
        Tags = body.Metadata,
        ProblemText = (body switch
        {
            AnalyzeBody analyze => analyze.ProblemText,
            HintBody hint => hint.ProblemText,
            VerifyBody verify => verify.ProblemText,
            _ => null,
        })?.Trim(),
        Image = (body as ImageBody)?.Image,
        Answer = (body as VerifyBody)?.Answer?.Trim(),
        PreviousHints = body is HintBody { PreviousHints: { } hints } ? [.. hints.Select(h => h.Trim()).Where(h => h.Length > 0)] : [],
        Messages = body is ChatBody { Messages: { } turns } ? [.. turns.Select(t => new ChatTurn(t.Role, t.Content))] : [],
        ProblemContext = (body as ChatBody)?.ProblemContext?.Trim(),
        Stream = (body as ChatBody)?.Stream ?? false,
    };

    public required HomeworkFeature Feature { get; init; }

    /// <summary>The <c>userId</c> the body names, as a string (<c>7</c> and <c>"7"</c> are the same).</summary>
    public string? BodyUserId { get; init; }

    /// <summary>The user charged, resolved from the token and the body; null for an anonymous call.</summary>
    public string? ChargedUserId { get; set; }

    public string? GradeLevel { get; init; }

    public string? Subject { get; init; }

    public string? SessionId { get; init; }

    public string? ProblemId { get; init; }

    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    public string? ProblemText { get; init; }

    public HomeworkImage? Image { get; init; }

    public string? Answer { get; init; }

    public IReadOnlyList<string> PreviousHints { get; init; } = [];

    public IReadOnlyList<ChatTurn> Messages { get; init; } = [];

    public string? ProblemContext { get; init; }

    public bool Stream { get; init; }
}

/// <summary>An image to look at: decoded bytes (from <c>imageBase64</c>) or a URL (from <c>imageUrl</c>).</summary>
internal sealed record HomeworkImage(BinaryData? Bytes, string? MediaType, Uri? Url);

/// <summary>One turn of a tutoring chat.</summary>
internal sealed record ChatTurn(string Role, string Content);
