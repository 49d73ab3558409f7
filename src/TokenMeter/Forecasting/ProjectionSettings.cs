namespace TokenMeter.Forecasting;

/// <summary>The knobs of <see cref="CostProjection"/>; the defaults are the ones the backtest in bench/ measured.</summary>
internal sealed record ProjectionSettings
{
    /// <summary>The defaults.</summary>
    public static ProjectionSettings Default { get; } = new();

    /// <summary>Complete days the daily rates are estimated from.</summary>
    public int WindowDays { get; init; } = 21;

    /// <summary>Below this many complete days of history the projection is flat and its interval widened.</summary>
    public int MinimumHistoryDays { get; init; } = 7;

    /// <summary>How much wider the interval is when history is short.</summary>
    public double ShortHistoryWidening { get; init; } = 2.0;

    /// <summary>
    /// Extra relative uncertainty of the remaining days' total, for drift the recent days cannot show
    /// (growth, term starts, holidays).
    /// </summary>
    public double DriftFraction { get; init; } = 0.10;

    /// <summary>Use a damped growth trend measured from the previous window (needs twice the window of history).</summary>
    public bool UseTrend { get; init; } = true;

    /// <summary>How much of the measured growth is carried forward (0 = none, 1 = all).</summary>
    public double TrendDamping { get; init; } = 0.5;

    /// <summary>Two-sided normal quantile of the interval (1.2816 for 80%).</summary>
    public double Z { get; init; } = 1.2815515655446004;
}
