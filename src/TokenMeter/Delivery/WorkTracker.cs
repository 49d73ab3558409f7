namespace TokenMeter.Delivery;

/// <summary>Counts queued background work so tests (and shutdown) can await the moment nothing is left.</summary>
internal sealed class WorkTracker
{
    private readonly Lock _gate = new();
    private int _unfinished;
    private TaskCompletionSource _idle = Completed();

    public void Begin()
    {
        lock (_gate)
        {
            if (_unfinished++ == 0)
            {
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    public void End()
    {
        lock (_gate)
        {
            if (--_unfinished == 0)
            {
                _idle.TrySetResult();
            }
        }
    }

    /// <summary>Completes when every begun piece of work has ended.</summary>
    public Task WhenIdleAsync()
    {
        lock (_gate)
        {
            return _idle.Task;
        }
    }

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        done.SetResult();
        return done;
    }
}
