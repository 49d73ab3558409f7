using System.ClientModel;
using System.ClientModel.Primitives;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Storage;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Benchmarks.Metering;

/// <summary>
/// Metered vs unmetered OpenAI SDK chat calls against the loopback fake server, side by side:
/// a plain (buffered) call, a whole streamed call, and a streamed call's time to first chunk.
/// The metered client runs the full default pipeline: policy, pricer, scope, metrics, writer
/// into a store that counts the records (see <see cref="CountingUsageStore"/>). The unmetered client sends through the very same
/// <see cref="HttpClient"/> (the one <c>AddOpenAIClient()</c> takes from <c>IHttpClientFactory</c>),
/// so the only difference between the two is metering.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class MeteringOverheadBenchmarks
{
    private static readonly ChatMessage[] Messages =
    [
        new SystemChatMessage("You are a patient maths tutor. Give one hint at a time and never the final answer."),
        new UserChatMessage("A train leaves at 3pm at 60 km/h; another leaves the same station at 4pm at 80 km/h. When does the second catch up?"),
    ];

    private FakeOpenAIServer _server = null!;

    /// <summary>Where the writer stores the records (counted, not kept).</summary>
    public CountingUsageStore Store { get; } = new();
    private IHost _host = null!;
    private ChatClient _metered = null!;
    private ChatClient _unmetered = null!;
    private ChatClient _bare = null!;
    private ChatClient _cannedMetered = null!;
    private ChatClient _cannedUnmetered = null!;
    private UsageScope _scope = null!;

    [GlobalSetup]
    public void Setup()
    {
        _server = FakeOpenAIServer.StartAsync().GetAwaiter().GetResult();
        _server.DefaultReply = new FakeReply { Text = "Think about the head start: how far has the first train gone by 4pm?" };

        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:OpenAI:Endpoint"] = _server.Endpoint.ToString(),
            ["TokenMeter:OpenAI:ApiKey"] = "sk-bench",
            ["TokenMeter:OpenAI:MaxRetries"] = "0",
        });
        builder.Services.AddSingleton<IUsageStore>(Store);
        builder.Services.AddTokenMeter().AddOpenAIClient();
        _host = builder.Build();
        _host.Start();

        _metered = _host.Services.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o-mini");
        var sameHttpClient = _host.Services.GetRequiredService<IHttpClientFactory>().CreateClient(TokenMeterOpenAIOptions.HttpClientName);
        _unmetered = Client(sameHttpClient, metered: false);

        // The previous baseline: a bare HttpClient, without IHttpClientFactory's logging handlers.
        var bare = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = Timeout.InfiniteTimeSpan };
        _bare = Client(bare, metered: false);

        // No socket: replies recorded from the fake server, answered in-process.
        var canned = new HttpClient(CannedReplyHandler.RecordAsync(_server.Endpoint).GetAwaiter().GetResult());
        _cannedMetered = Client(canned, metered: true);
        _cannedUnmetered = Client(canned, metered: false);
        _scope = UsageScope.Begin(new UsageContext { UserId = "bench-user", Endpoint = "/api/hint" });
    }

    private ChatClient Client(HttpClient httpClient, bool metered)
    {
        var options = new OpenAIClientOptions
        {
            Endpoint = _server.Endpoint,
            RetryPolicy = new ClientRetryPolicy(0),
            Transport = new HttpClientPipelineTransport(httpClient),
        };
        if (metered)
        {
            options.AddTokenMeter(_host.Services);
        }

        return new OpenAIClient(new ApiKeyCredential("sk-bench"), options).GetChatClient("gpt-4o-mini");
    }

    /// <summary>
    /// Waits until the writer has taken every queued call: with no observer registered, records are
    /// built and priced when the writer takes them, and that CPU belongs to the calls just made.
    /// </summary>
    public void WaitForWriter()
    {
        var writer = _host.Services.GetRequiredService<TokenMeter.Writing.UsageWriter>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (writer.QueueLength > 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(5);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _scope.Dispose();
        _host.StopAsync().GetAwaiter().GetResult();
        _host.Dispose();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, Description = "unmetered")]
    [BenchmarkCategory("plain")]
    public Task<ClientResult<ChatCompletion>> PlainUnmetered() => _unmetered.CompleteChatAsync(Messages);

    [Benchmark(Description = "metered")]
    [BenchmarkCategory("plain")]
    public Task<ClientResult<ChatCompletion>> PlainMetered() => _metered.CompleteChatAsync(Messages);

    [Benchmark(Description = "unmetered, bare HttpClient")]
    [BenchmarkCategory("plain")]
    public Task<ClientResult<ChatCompletion>> PlainBare() => _bare.CompleteChatAsync(Messages);

    [Benchmark(Baseline = true, Description = "unmetered")]
    [BenchmarkCategory("in-process")]
    public Task<ClientResult<ChatCompletion>> CannedUnmetered() => _cannedUnmetered.CompleteChatAsync(Messages);

    [Benchmark(Description = "metered")]
    [BenchmarkCategory("in-process")]
    public Task<ClientResult<ChatCompletion>> CannedMetered() => _cannedMetered.CompleteChatAsync(Messages);

    [Benchmark(Baseline = true, Description = "unmetered")]
    [BenchmarkCategory("in-process-stream")]
    public Task<int> CannedStreamUnmetered() => Consume(_cannedUnmetered);

    [Benchmark(Description = "metered")]
    [BenchmarkCategory("in-process-stream")]
    public Task<int> CannedStreamMetered() => Consume(_cannedMetered);

    [Benchmark(Baseline = true, Description = "unmetered")]
    [BenchmarkCategory("stream-whole")]
    public Task<int> StreamUnmetered() => Consume(_unmetered);

    [Benchmark(Description = "metered")]
    [BenchmarkCategory("stream-whole")]
    public Task<int> StreamMetered() => Consume(_metered);

    [Benchmark(Baseline = true, Description = "unmetered")]
    [BenchmarkCategory("stream-first-chunk")]
    public Task<StreamingChatCompletionUpdate> FirstChunkUnmetered() => FirstChunk(_unmetered);

    [Benchmark(Description = "metered")]
    [BenchmarkCategory("stream-first-chunk")]
    public Task<StreamingChatCompletionUpdate> FirstChunkMetered() => FirstChunk(_metered);

    private static async Task<int> Consume(ChatClient client)
    {
        var count = 0;
        await foreach (var _ in client.CompleteChatStreamingAsync(Messages))
        {
            count++;
        }

        return count;
    }

    // Measures only the time to the first chunk; the rest of the stream is read in the background
    // (so a metered stream still ends normally with its usage), the same way for both clients.
    private static async Task<StreamingChatCompletionUpdate> FirstChunk(ChatClient client)
    {
        var updates = client.CompleteChatStreamingAsync(Messages).GetAsyncEnumerator();
        await updates.MoveNextAsync();
        var first = updates.Current;
        _ = Drain(updates);
        return first;
    }

    private static async Task Drain(IAsyncEnumerator<StreamingChatCompletionUpdate> updates)
    {
        await using (updates)
        {
            while (await updates.MoveNextAsync())
            {
            }
        }
    }
}
