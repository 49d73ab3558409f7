using TokenMeter.Attribution;

namespace TokenMeter.Metering;

/// <summary>
/// A finished call whose record is built, priced, counted and logged off the caller's thread: by
/// the writer when it takes the call from its queue, or by whoever reads the totals of the call's
/// scope first. Metering defers this way when no <see cref="IUsageObserver"/> needs the record the
/// moment the call ends. Resolves exactly once; every reader gets the same record.
/// </summary>
internal sealed class DeferredUsage : IPendingUsage
{
    /// <summary>Buffered replies up to this size are kept and read on resolve; larger ones are read at once.</summary>
    public const int MaxDeferredReply = 16 * 1024;

    private readonly MeteredCall _call;
    private readonly int? _httpStatus;
    private readonly double _durationMs;

    // 0 not built, 1 being built, 2 built: one resolver builds, a concurrent one waits for it (no lock object per call).
    private int _state;
    private int _builder;
    private ParsedUsage _usage;
    private UsageStatus _status;
    private BinaryData? _reply;
    private bool _replyIsError;
    private KeptStream _stream;
    private bool _hasStream;
    private UsageRecord? _record;

    /// <summary>A call whose usage is already known (a stream read to its end, a failure).</summary>
    public DeferredUsage(MeteredCall call, in ParsedUsage usage, UsageStatus status, int? httpStatus, double durationMs)
    {
        _call = call;
        _usage = usage;
        _status = status;
        _httpStatus = httpStatus;
        _durationMs = durationMs;
    }

    /// <summary>A call with a buffered reply, read when the record is resolved.</summary>
    public DeferredUsage(MeteredCall call, BinaryData reply, bool isError, int httpStatus, double durationMs)
    {
        _call = call;
        _reply = reply;
        _replyIsError = isError;
        _httpStatus = httpStatus;
        _durationMs = durationMs;
    }

    /// <summary>A streamed call, its kept bytes read when the record is resolved.</summary>
    public DeferredUsage(MeteredCall call, KeptStream stream, int httpStatus, double durationMs)
    {
        _call = call;
        _stream = stream;
        _hasStream = true;
        _httpStatus = httpStatus;
        _durationMs = durationMs;
    }

    /// <summary>Whether the record has been built (cheap; no building).</summary>
    public bool IsResolved => Volatile.Read(ref _state) == 2;

    /// <summary>The record, built on first use; null when building it failed (logged).</summary>
    public UsageRecord? Resolve()
    {
        if (Volatile.Read(ref _state) == 2)
        {
            return _record;
        }

        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            if (Volatile.Read(ref _builder) == Environment.CurrentManagedThreadId)
            {
                // Asked again while building it (from a pricer or a metrics listener): not built yet.
                return null;
            }

            // Another thread is building it (the writer and a scope reader at once): a few microseconds.
            var wait = default(SpinWait);
            while (Volatile.Read(ref _state) != 2)
            {
                wait.SpinOnce();
            }

            return _record;
        }

        Volatile.Write(ref _builder, Environment.CurrentManagedThreadId);
        try
        {
            if (_hasStream)
            {
                _hasStream = false;
                try
                {
                    _status = _stream.Read(_call, ref _usage);
                }
                catch (Exception ex)
                {
                    // Still recorded, as a stream whose usage could not be read.
                    _call.Meter.Failed(ex);
                    _usage = default;
                    _status = UsageStatus.UsageMissing;
                }
                finally
                {
                    _stream.Release();
                    _stream = default;
                }
            }
            else if (_reply is { } reply)
            {
                _status = OpenAIMeteringPolicy.ReadBufferedReply(_call, reply.ToMemory().Span, _replyIsError, ref _usage);
                _reply = null;
            }

            _record = _call.Build(_usage, _status, _httpStatus, _durationMs) is { } built ? _call.Meter.Finish(built) : null;
        }
        catch (Exception ex)
        {
            // Resolving runs on the writer or a scope reader: a metering bug must reach neither.
            _call.Meter.Failed(ex);
            _record = null;
        }

        Volatile.Write(ref _state, 2);
        return _record;
    }
}
