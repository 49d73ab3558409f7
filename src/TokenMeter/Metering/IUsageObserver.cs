namespace TokenMeter.Metering;

/// <summary>
/// Sees every finished, priced call as it is recorded (budgets, rate limits, alerts). Register
/// implementations as services (<c>services.AddSingleton&lt;IUsageObserver, MyObserver&gt;()</c>).
/// </summary>
/// <remarks>
/// Called synchronously on the thread that completed the call, before the record is queued for
/// storage. It must be cheap and must not block; an exception it throws is logged and ignored.
/// While any observer is registered, every record is built and priced on that thread; with none,
/// metering leaves building, pricing and metrics to the background writer, so a metered call costs
/// its caller less.
/// </remarks>
public interface IUsageObserver
{
    /// <summary>A call finished and was priced.</summary>
    /// <param name="record">The record, as it will be stored.</param>
    void OnUsage(UsageRecord record);
}
