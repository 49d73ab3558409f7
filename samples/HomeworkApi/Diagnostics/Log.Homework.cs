namespace HomeworkApi.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Model call to {Model} failed: {Detail}")]
    public static partial void ModelFailed(ILogger logger, Exception exception, string model, string detail);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Model {Model} sent an unusable reply: {Detail}.")]
    public static partial void ModelMalformed(ILogger logger, string model, string detail);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Model {Model} refused to answer.")]
    public static partial void ModelRefused(ILogger logger, string model);
}
