using TokenMeter.Attribution;

namespace TokenMeter.Metering;

/// <summary>
/// Attributes the requests of a Batch API output file the app downloads. Without one, each line
/// is charged to the scope the download ran in. Register an implementation to charge each line by
/// the <c>custom_id</c> the app gave it (e.g. <c>user-42/hint-7</c>).
/// </summary>
public interface IBatchAttribution
{
    /// <summary>The attribution of one request of a batch; null keeps the download's scope.</summary>
    /// <param name="customId">The <c>custom_id</c> of the request line.</param>
    /// <param name="downloadScope">The attribution of the download, when any.</param>
    /// <returns>The attribution, or null.</returns>
    UsageContext? Attribute(string customId, UsageContext? downloadScope);
}
