/// <summary>
/// The runtime calls <c>Initialize</c> when this assembly is named in <c>DOTNET_STARTUP_HOOKS</c>
/// (<c>sample-vs-sdk --tail</c> does so for the sample): it starts <see cref="TokenMeter.LoadTest.Harness.TailProbe"/>.
/// </summary>
#pragma warning disable CA1050 // The runtime looks for this type by its name, outside any namespace.
internal static class StartupHook
#pragma warning restore CA1050
{
    public static void Initialize() => TokenMeter.LoadTest.Harness.TailProbe.StartFromEnvironment();
}
