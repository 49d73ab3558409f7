namespace TokenMeter.Metering;

/// <summary>
/// Lets an outer metering layer (the <c>IChatClient</c> middleware) learn that the pipeline
/// policy already metered the call it made, so the call is not counted twice.
/// </summary>
internal sealed class MeteringProbe
{
    private static readonly AsyncLocal<MeteringProbe?> CurrentProbe = new();

    public static MeteringProbe? Current
    {
        get => CurrentProbe.Value;
        set => CurrentProbe.Value = value;
    }

    public bool Metered { get; set; }
}
