namespace TokenMeter;

/// <summary>How a metered call ended, as far as its usage is concerned.</summary>
public enum UsageStatus
{
    /// <summary>The call succeeded and the reply reported its usage.</summary>
    Ok = 0,

    /// <summary>The endpoint answered with an HTTP error status; usage is what the reply reported, usually none.</summary>
    HttpError = 1,

    /// <summary>No reply arrived: connection refused, reset, or timed out.</summary>
    TransportError = 2,

    /// <summary>The caller cancelled the call or abandoned a stream before usage arrived.</summary>
    Cancelled = 3,

    /// <summary>The call succeeded but the reply carried no usage (for example a stream that ended without its usage event).</summary>
    UsageMissing = 4,

    /// <summary>Token counts were estimated locally with a tokenizer because the reply reported none.</summary>
    Estimated = 5,
}
