using Microsoft.Extensions.DependencyInjection;

namespace TokenMeter;

internal sealed class TokenMeterBuilder(IServiceCollection services) : ITokenMeterBuilder
{
    public IServiceCollection Services { get; } = services;
}
