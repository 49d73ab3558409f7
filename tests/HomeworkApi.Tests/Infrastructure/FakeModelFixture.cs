using TokenMeter.Testing.FakeOpenAI;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>One fake OpenAI server and one app pointed at it, shared by the tests of a class (which run one at a time).</summary>
public sealed class FakeModelFixture : IAsyncLifetime
{
    public FakeOpenAIServer Model { get; private set; } = null!;

    public HomeworkApp App { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Model = await FakeOpenAIServer.StartAsync();
        Model.Responder = r => FakeModelReplies.For(r);
        App = HomeworkApp.WithModelEndpoint(Model.Endpoint);
        _ = App.Server;
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
