using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>One fake OpenAI server and one app pointed at it, shared by the tests of a class (which run one at a time).</summary>
public class FakeModelFixture : IAsyncLifetime
{
    public FakeOpenAIServer Model { get; private set; } = null!;

    public HomeworkApp App { get; private set; } = null!;

    /// <summary>The app's per-attempt model timeout: generous, so a loaded machine never turns a slow answer into a 502.</summary>
    protected virtual int TimeoutSeconds => 15;

    public async Task InitializeAsync()
    {
        Model = await FakeOpenAIServer.StartAsync();
        Model.Responder = r => FakeModelReplies.For(r);
        var settings = new Dictionary<string, string?>(Settings) { ["OpenAI:TimeoutSeconds"] = TimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        App = HomeworkApp.WithModelEndpoint(Model.Endpoint, settings);
        App.TestServices = ConfigureServices;
        _ = App.Server;
    }

    /// <summary>More settings of the app (they override the defaults), for fixtures that turn a feature on.</summary>
    protected virtual IDictionary<string, string?> Settings => new Dictionary<string, string?>();

    /// <summary>Replaces services of the app, e.g. with a fake clock.</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    /// <summary>Forgets earlier requests and scripted replies, and restores the default responder.</summary>
    public void Reset()
    {
        Model.Reset();
        Model.Responder = r => FakeModelReplies.For(r);
    }

    public async Task DisposeAsync()
    {
        await App.DisposeAsync();
        await Model.DisposeAsync();
    }
}

/// <summary>The same, with a 2-second model timeout for the tests that make the model time out.</summary>
public sealed class ShortTimeoutFakeModelFixture : FakeModelFixture
{
    protected override int TimeoutSeconds => 2;
}
