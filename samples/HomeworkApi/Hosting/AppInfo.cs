namespace HomeworkApi.Hosting;

/// <summary>The answer of <c>GET /api/info</c>: how the app runs.</summary>
/// <param name="SimulatedModel">True when answers come from the in-process stand-in for OpenAI.</param>
/// <param name="Storage"><c>postgresql</c> or <c>memory</c>.</param>
/// <param name="Models">The model of each feature.</param>
internal sealed record AppInfo(bool SimulatedModel, string Storage, FeatureModels Models);

/// <summary>The model each homework feature calls.</summary>
internal sealed record FeatureModels(string Analyze, string Verify, string ValidateImage, string Hint, string Chat);
