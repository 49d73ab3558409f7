namespace TokenMeter.Metering;

/// <summary>
/// Lets an outer metering layer (the <c>IChatClient</c> middleware) learn that the pipeline
/// policy already metered the call it made, so the call is not counted twice.
/// </summary>
internal sealed class MeteringProbe
{
    private static readonly AsyncLocal<MeteringProbe?> CurrentProbe = new();

    // Set once any probe was: until then (an app without the middleware) no call reads the async-local.
    private static bool s_used;

    public static MeteringProbe? Current
    {
        get => Volatile.Read(ref s_used) ? CurrentProbe.Value : null;
        set
        {
            if (value is not null)
            {
                Volatile.Write(ref s_used, true);
            }

            CurrentProbe.Value = value;
        }
    }

    public bool Metered { get; set; }
}
