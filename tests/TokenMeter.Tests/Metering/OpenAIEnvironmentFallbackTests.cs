using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.Tests.Metering;

/// <summary>Like the SDK, an unset key or endpoint falls back to OPENAI_API_KEY / OPENAI_BASE_URL.</summary>
public sealed class OpenAIEnvironmentFallbackTests
{
    private static ServiceProvider Build(Dictionary<string, string?> configuration, Action<TokenMeterOpenAIOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(configuration).Build());
        services.AddTokenMeter().AddOpenAIClient(configure);
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task NoTokenMeterKeys_UsesOpenAIApiKeyAndBaseUrl()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        await using var sp = Build(new()
        {
            ["OPENAI_API_KEY"] = "sk-from-environment",
            ["OPENAI_BASE_URL"] = server.Endpoint.ToString(),
        });

        await sp.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Equal("Bearer sk-from-environment", server.Requests[0].Headers["Authorization"]);
    }

    [Fact]
    public async Task TokenMeterKeysSet_WinOverTheEnvironment()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        await using var sp = Build(new()
        {
            ["TokenMeter:OpenAI:ApiKey"] = "sk-configured",
            ["TokenMeter:OpenAI:Endpoint"] = server.Endpoint.ToString(),
            ["OPENAI_API_KEY"] = "sk-from-environment",
            ["OPENAI_BASE_URL"] = "http://127.0.0.1:1/v1",
        });

        await sp.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Equal("Bearer sk-configured", server.Requests[0].Headers["Authorization"]);
    }

    [Fact]
    public async Task BadBaseUrl_FailsNamingTheVariable()
    {
        await using var sp = Build(new() { ["OPENAI_API_KEY"] = "sk-x", ["OPENAI_BASE_URL"] = "not a url" });

        var error = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TokenMeterOpenAIOptions>>().Value);

        Assert.Contains("OPENAI_BASE_URL", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-x", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoKeyAnywhere_MessageNamesTheKeyAndTheVariable()
    {
        var options = new TokenMeterOpenAIOptions();
        TokenMeterOpenAIBuilderExtensions.ApplyEnvironmentFallback(options, new ConfigurationBuilder().Build());
        if (Environment.GetEnvironmentVariable("OPENAI_API_KEY") is { Length: > 0 })
        {
            // This machine has a key in its environment: the fallback must have taken it.
            Assert.False(string.IsNullOrEmpty(options.ApiKey));
            return;
        }

        await using var sp = Build([]);
        var error = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<TokenMeterOpenAIOptions>>().Value);
        Assert.Contains("TokenMeter:OpenAI:ApiKey", error.Message, StringComparison.Ordinal);
        Assert.Contains("OPENAI_API_KEY", error.Message, StringComparison.Ordinal);
    }
}
