using System.Globalization;

namespace TokenMeter;

/// <summary>
/// The one spelling of <see cref="UsageStatus"/> outside .NET: snake_case names (<c>ok</c>,
/// <c>http_error</c>, <c>transport_error</c>, <c>cancelled</c>, <c>usage_missing</c>,
/// <c>estimated</c>) as stored in the database, written to CSV exports and put on the
/// <c>tokenmeter.status</c> metric tag. A value this version does not name is written as its number,
/// and read back from it, so a newer status survives a round trip through an older reader.
/// </summary>
public static class UsageStatusNames
{
    /// <summary>The wire name of <see cref="UsageStatus.Ok"/>.</summary>
    public const string Ok = "ok";

    /// <summary>The wire name of <see cref="UsageStatus.HttpError"/>.</summary>
    public const string HttpError = "http_error";

    /// <summary>The wire name of <see cref="UsageStatus.TransportError"/>.</summary>
    public const string TransportError = "transport_error";

    /// <summary>The wire name of <see cref="UsageStatus.Cancelled"/>.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>The wire name of <see cref="UsageStatus.UsageMissing"/>.</summary>
    public const string UsageMissing = "usage_missing";

    /// <summary>The wire name of <see cref="UsageStatus.Estimated"/>.</summary>
    public const string Estimated = "estimated";

    /// <summary>The wire name of <paramref name="status"/>; its number (invariant culture) when it has no name.</summary>
    /// <param name="status">The status.</param>
    /// <returns>The name, never null.</returns>
    public static string GetName(UsageStatus status) => status switch
    {
        UsageStatus.Ok => Ok,
        UsageStatus.HttpError => HttpError,
        UsageStatus.TransportError => TransportError,
        UsageStatus.Cancelled => Cancelled,
        UsageStatus.UsageMissing => UsageMissing,
        UsageStatus.Estimated => Estimated,
        _ => ((int)status).ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Reads a wire name (or a number written for an unnamed status); false when it is neither.</summary>
    /// <param name="name">The name as stored or sent; matched exactly (names are lower case).</param>
    /// <param name="status">The status read, when the result is true.</param>
    /// <returns>Whether <paramref name="name"/> was a wire name or a number.</returns>
    public static bool TryParse(string? name, out UsageStatus status)
    {
        switch (name)
        {
            case Ok: status = UsageStatus.Ok; return true;
            case HttpError: status = UsageStatus.HttpError; return true;
            case TransportError: status = UsageStatus.TransportError; return true;
            case Cancelled: status = UsageStatus.Cancelled; return true;
            case UsageMissing: status = UsageStatus.UsageMissing; return true;
            case Estimated: status = UsageStatus.Estimated; return true;
        }

        if (int.TryParse(name, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            status = (UsageStatus)number;
            return true;
        }

        status = default;
        return false;
    }

    /// <summary>Reads a wire name (or a number written for an unnamed status).</summary>
    /// <param name="name">The name as stored or sent.</param>
    /// <returns>The status.</returns>
    /// <exception cref="FormatException"><paramref name="name"/> is neither a wire name nor a number.</exception>
    public static UsageStatus Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return TryParse(name, out var status) ? status : throw new FormatException($"'{name}' is not a usage status name.");
    }
}
