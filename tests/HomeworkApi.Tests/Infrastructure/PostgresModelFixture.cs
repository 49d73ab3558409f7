using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>A fresh PostgreSQL database, a fake OpenAI server, and the app using both.</summary>
public sealed class PostgresModelFixture : PostgresDatabaseFixture
{
    public FakeOpenAIServer Model { get; private set; } = null!;

    public HomeworkApp App { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Model = await FakeOpenAIServer.StartAsync();
        Model.Responder = r => FakeModelReplies.For(r);
        App = CreateApp();
        _ = App.Server;
    }

    /// <summary>Another app instance on the same database and model.</summary>
    public HomeworkApp CreateApp(IDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?> { ["ConnectionStrings:TokenMeter"] = ConnectionString };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return HomeworkApp.WithModelEndpoint(Model.Endpoint, settings);
    }

    public void Reset()
    {
        Model.Reset();
        Model.Responder = r => FakeModelReplies.For(r);
    }

    public override async Task DisposeAsync()
    {
        await App.DisposeAsync();
        await Model.DisposeAsync();
        await base.DisposeAsync();
    }
}
