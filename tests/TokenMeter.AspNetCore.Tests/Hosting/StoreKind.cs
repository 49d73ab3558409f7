namespace TokenMeter.AspNetCore.Tests.Hosting;

/// <summary>The admin API tests run once per store; each concrete test class picks one.</summary>
public abstract class StoreTestBase
{
    /// <summary>Registers the store under test on the TokenMeter builder; the in-memory store needs nothing.</summary>
    internal virtual void UseStore(ITokenMeterBuilder builder)
    {
    }

    internal Task<TestApp> StartAsync(Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configure = null, Action<Microsoft.AspNetCore.Builder.WebApplication>? map = null)
        => TestApp.StartAsync(configure, map, UseStore);
}
