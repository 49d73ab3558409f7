using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Json.Serialization;

namespace HomeworkApi.Homework;

/// <summary>
/// The JSON bodies of the homework routes: each route binds its record (read by
/// <see cref="HomeworkBodyReader"/> with the source-generated <see cref="HomeworkJsonContext"/>), the
/// record's attributes and <see cref="IValidatableObject"/> checks are the rules, and the API document's
/// schemas come from the same records. Every 400 sentence names the field, as the API has always said it.
/// </summary>
internal abstract record HomeworkBody
{
    public const int MaxTextLength = 20_000;

    [Description("The student to charge: only an admin (a backend acting for a student) may name one; a string or a whole number. Leave it out to charge the signed-in user.")]
    [JsonConverter(typeof(UserIdConverter))]
    [Text(100, OverLengthMessage = "must not be empty.")]
    public string? UserId { get; init; }

    [Description("The student's grade level (a string or a number, at most 40 characters); recorded as a tag.")]
    [JsonConverter(typeof(ScalarTextConverter))]
    [Text(40)]
    public string? GradeLevel { get; init; }

    [Description("The subject, e.g. math; recorded as a tag.")]
    [Text(100)]
    public string? Subject { get; init; }

    [Description("Groups calls of one study session (a string or a number).")]
    [JsonConverter(typeof(ScalarTextConverter))]
    [Text(200)]
    public string? SessionId { get; init; }

    [Description("Groups calls about one problem (a string or a number).")]
    [JsonConverter(typeof(ScalarTextConverter))]
    [Text(200)]
    public string? ProblemId { get; init; }

    [Description("Up to 20 tags recorded with the call: keys of 1 to 100 characters, values (any JSON value, kept as text) of at most 1,000.")]
    [JsonConverter(typeof(TagsConverter))]
    [Tags]
    public Dictionary<string, string>? Metadata { get; init; }

    /// <summary>Why the body could not be read into the record (not JSON, not an object, a field of the wrong type); null when it was.</summary>
    [JsonIgnore]
    internal string? ReadError { get; init; }
}

/// <summary>An image, as base64 (or a data URI) or as a URL: one of the two.</summary>
internal abstract record ImageBody : HomeworkBody, IValidatableObject
{
    [Description("A PNG, JPEG, GIF or WebP image of at most 10 MiB, as base64 or a data:image/...;base64, URI.")]
    public string? ImageBase64 { get; init; }

    [Description("An absolute http(s) URL of the image (at most 4,096 characters), or a data: URI.")]
    public string? ImageUrl { get; init; }

    /// <summary>The image the checks decoded (or the URL they accepted), kept so the prompt does not decode it again.</summary>
    [JsonIgnore]
    internal HomeworkImage? Image { get; private set; }

    /// <summary>Whether the route needs an image whatever else the body holds.</summary>
    protected virtual bool ImageRequired => true;

    public virtual IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var (image, error) = HomeworkImages.Read(ImageBase64, ImageUrl);
        if (error is not null)
        {
            return [new ValidationResult(error, [nameof(Image)])];
        }

        Image = image;
        if (image is null && ImageRequired)
        {
            return [new ValidationResult(RequiredMessage, [nameof(Image)])];
        }

        return [];
    }

    /// <summary>The sentence when no image (nor anything else that would do) was sent.</summary>
    protected virtual string RequiredMessage => "imageBase64 or imageUrl is required.";
}

/// <summary>The body of <c>POST /api/validate-image</c>: <c>imageBase64</c> or <c>imageUrl</c>.</summary>
internal sealed record ValidateImageBody : ImageBody, IBindableFromHttpContext<ValidateImageBody>
{
    public static ValueTask<ValidateImageBody?> BindAsync(HttpContext context, ParameterInfo parameter) => HomeworkBodyReader.ReadAsync<ValidateImageBody>(context);
}

/// <summary>The body of <c>POST /api/analyze</c>: the problem as text, as an image, or both.</summary>
internal sealed record AnalyzeBody : ImageBody, IBindableFromHttpContext<AnalyzeBody>
{
    [Description("The problem as text (at least one of problemText, imageBase64, imageUrl).")]
    [Text(MaxTextLength)]
    public string? ProblemText { get; init; }

    protected override bool ImageRequired => ProblemText is null;

    protected override string RequiredMessage => "problemText, imageBase64 or imageUrl is required (at least one).";

    public static ValueTask<AnalyzeBody?> BindAsync(HttpContext context, ParameterInfo parameter) => HomeworkBodyReader.ReadAsync<AnalyzeBody>(context);
}

/// <summary>The body of <c>POST /api/hint</c>.</summary>
internal sealed record HintBody : HomeworkBody, IBindableFromHttpContext<HintBody>
{
    public const int MaxPreviousHints = 20;

    [Required(AllowEmptyStrings = true, ErrorMessage = "problemText is required.")]
    [Text(MaxTextLength)]
    public string? ProblemText { get; init; }

    [Description("The hints given so far (at most 20); the next one goes further.")]
    [MaxLength(MaxPreviousHints, ErrorMessage = "previousHints may hold at most 20 items.")]
    [TextItems(MaxTextLength)]
    public List<string>? PreviousHints { get; init; }

    public static ValueTask<HintBody?> BindAsync(HttpContext context, ParameterInfo parameter) => HomeworkBodyReader.ReadAsync<HintBody>(context);
}

/// <summary>The body of <c>POST /api/verify</c>.</summary>
internal sealed record VerifyBody : HomeworkBody, IBindableFromHttpContext<VerifyBody>
{
    [Required(AllowEmptyStrings = true, ErrorMessage = "problemText is required.")]
    [Text(MaxTextLength)]
    public string? ProblemText { get; init; }

    [Required(AllowEmptyStrings = true, ErrorMessage = "answer is required.")]
    [Description("The student's answer.")]
    [Text(MaxTextLength)]
    public string? Answer { get; init; }

    public static ValueTask<VerifyBody?> BindAsync(HttpContext context, ParameterInfo parameter) => HomeworkBodyReader.ReadAsync<VerifyBody>(context);
}

/// <summary>The body of <c>POST /api/chat</c>.</summary>
internal sealed record ChatBody : HomeworkBody, IValidatableObject, IBindableFromHttpContext<ChatBody>
{
    public const int MaxMessages = 50;

    [Required(ErrorMessage = "messages is required.")]
    [Description("The conversation so far, oldest first (1 to 50 turns); the last is the student's.")]
    [MinLength(1, ErrorMessage = "messages must hold at least one message.")]
    [MaxLength(MaxMessages, ErrorMessage = "messages may hold at most 50 messages; start a new chat.")]
    public List<ChatTurnBody>? Messages { get; init; }

    [Description("The problem the chat is about.")]
    [Text(MaxTextLength)]
    public string? ProblemContext { get; init; }

    [Description("true: answer as server-sent events (delta … done).")]
    public bool? Stream { get; init; }

    public static ValueTask<ChatBody?> BindAsync(HttpContext context, ParameterInfo parameter) => HomeworkBodyReader.ReadAsync<ChatBody>(context);

    /// <summary>Each turn, in order (the first fault is the one reported), then the last turn's role.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var messages = Messages ?? [];
        for (var i = 0; i < messages.Count; i++)
        {
            var error = messages[i] switch
            {
                null => $"messages[{i}] must be an object with role and content.",
                { Role: not ("user" or "assistant") } => $"messages[{i}].role must be \"user\" or \"assistant\".",
                { Content: var content } when string.IsNullOrWhiteSpace(content) => $"messages[{i}].content must be a non-empty string.",
                { Content.Length: > MaxTextLength } => $"messages[{i}].content is too long: at most {MaxTextLength:N0} characters.",
                _ => null,
            };
            if (error is not null)
            {
                return [new ValidationResult(error, [nameof(Messages)])];
            }
        }

        return messages is [.., { Role: not "user" }]
            ? [new ValidationResult("The last of messages must be the student's (role \"user\").", [nameof(Messages)])]
            : [];
    }
}

/// <summary>One turn of <see cref="ChatBody.Messages"/> (checked by <see cref="ChatBody.Validate"/>, which knows its index; not validated on its own).</summary>
internal sealed record ChatTurnBody(
    [property: Description("user or assistant.")] string Role,
    [property: MaxLength(HomeworkBody.MaxTextLength)] string Content);
