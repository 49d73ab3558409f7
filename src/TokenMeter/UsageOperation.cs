namespace TokenMeter;

/// <summary>Names of the kinds of call TokenMeter meters, following the OpenTelemetry GenAI <c>gen_ai.operation.name</c> values where one exists.</summary>
public static class UsageOperation
{
    /// <summary>Chat completions (<c>/chat/completions</c>).</summary>
    public const string Chat = "chat";

    /// <summary>The Responses API (<c>/responses</c>).</summary>
    public const string Responses = "responses";

    /// <summary>Embeddings (<c>/embeddings</c>).</summary>
    public const string Embeddings = "embeddings";

    /// <summary>Image generation and edits (<c>/images/*</c>).</summary>
    public const string Images = "images";

    /// <summary>Audio transcription and translation (<c>/audio/transcriptions</c>, <c>/audio/translations</c>).</summary>
    public const string AudioTranscription = "audio_transcription";

    /// <summary>Speech generation (<c>/audio/speech</c>).</summary>
    public const string AudioSpeech = "audio_speech";

    /// <summary>Moderation (<c>/moderations</c>); free, recorded with a cost of zero.</summary>
    public const string Moderation = "moderation";

    /// <summary>One request of a Batch API output file, recorded when the app downloads the file.</summary>
    public const string Batch = "batch";

    /// <summary>Legacy text completions (<c>/completions</c>).</summary>
    public const string TextCompletion = "text_completion";

    /// <summary>Any other call, recorded through the manual API or an unrecognised route.</summary>
    public const string Other = "other";
}
