namespace TokenMeter;

/// <summary>Names an app needs to collect TokenMeter's telemetry.</summary>
public static class TokenMeterDiagnostics
{
    /// <summary>
    /// The name of the one meter every TokenMeter package records on (<c>TokenMeter</c>): pass it to
    /// <c>AddMeter</c> of your metrics pipeline (OpenTelemetry, <c>dotnet-counters</c>).
    /// </summary>
    public const string MeterName = "TokenMeter";
}
