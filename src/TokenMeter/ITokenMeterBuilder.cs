using Microsoft.Extensions.DependencyInjection;

namespace TokenMeter;

/// <summary>Returned by <c>AddTokenMeter</c>; packages hang their registrations on it (e.g. <c>.AddPostgresStore(...)</c>).</summary>
public interface ITokenMeterBuilder
{
    /// <summary>The service collection TokenMeter is registered in.</summary>
    IServiceCollection Services { get; }
}
