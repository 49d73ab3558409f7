namespace TokenMeter.Postgres.Storage;

/// <summary>How <see cref="UsageStatus"/> is stored: snake_case text a DBA can read.</summary>
internal static class UsageStatusNames
{
    public static string ToText(UsageStatus status) => status switch
    {
        UsageStatus.Ok => "ok",
        UsageStatus.HttpError => "http_error",
        UsageStatus.TransportError => "transport_error",
        UsageStatus.Cancelled => "cancelled",
        UsageStatus.UsageMissing => "usage_missing",
        UsageStatus.Estimated => "estimated",
        _ => ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public static UsageStatus FromText(string text) => text switch
    {
        "ok" => UsageStatus.Ok,
        "http_error" => UsageStatus.HttpError,
        "transport_error" => UsageStatus.TransportError,
        "cancelled" => UsageStatus.Cancelled,
        "usage_missing" => UsageStatus.UsageMissing,
        "estimated" => UsageStatus.Estimated,
        _ => (UsageStatus)int.Parse(text, System.Globalization.CultureInfo.InvariantCulture),
    };
}
