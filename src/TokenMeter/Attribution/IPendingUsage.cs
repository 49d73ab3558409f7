namespace TokenMeter.Attribution;

/// <summary>A finished call whose record is built later (off the caller's thread); a scope adds it to its totals once built.</summary>
internal interface IPendingUsage
{
    /// <summary>Whether the record has been built (by the writer or by <see cref="Resolve"/>).</summary>
    bool IsResolved { get; }

    /// <summary>Builds the record now if nobody has; null when the call left nothing to record.</summary>
    UsageRecord? Resolve();
}
