namespace TokenMeter.Metering;

/// <summary>
/// Sees every finished, priced call as it is recorded (budgets, rate limits, alerts). Register
/// implementations as services (<c>services.AddSingleton&lt;IUsageObserver, MyObserver&gt;()</c>).
/// </summary>
/// <remarks>
/// Called synchronously on the thread that completed the call, before the record is queued for
/// storage. It must be cheap and must not block; an exception it throws is logged and ignored.
/// </remarks>
public interface IUsageObserver
{
    /// <summary>A call finished and was priced.</summary>
    /// <param name="record">The record, as it will be stored.</param>
    void OnUsage(UsageRecord record);
}
