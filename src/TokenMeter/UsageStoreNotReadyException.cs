namespace TokenMeter;

/// <summary>
/// Thrown by a store that cannot accept records yet because it is still being set up (a schema
/// installing at start-up). The writer keeps the records in its spool and tries again later,
/// logging one information line instead of a failure with a stack trace.
/// </summary>
public sealed class UsageStoreNotReadyException : Exception
{
    /// <summary>Creates the exception.</summary>
    public UsageStoreNotReadyException()
        : this("The usage store is not ready yet.")
    {
    }

    /// <summary>Creates the exception with a message saying what the store waits for.</summary>
    /// <param name="message">What the store waits for.</param>
    public UsageStoreNotReadyException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the failure that shows the store is not ready.</summary>
    /// <param name="message">What the store waits for.</param>
    /// <param name="innerException">The underlying failure.</param>
    public UsageStoreNotReadyException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
