using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.Configuration;

namespace TokenMeter.Tests.Configuration;

public sealed class ConfigurationKeyValidatorTests
{
    [Fact]
    public void Validate_NestedAndIndexedMembers_NamedByTheirConfigurationKeys()
    {
        var validator = new ConfigurationKeyValidator<SampleOptions>(new SampleOptionsValidator(), "TokenMeter:Sample");
        var options = new SampleOptions { Limit = 0, Items = { new SampleItem { Name = "ok" }, new SampleItem { Name = string.Empty } } };

        var result = validator.Validate(Options.DefaultName, options);

        Assert.True(result.Failed);
        Assert.Contains("TokenMeter:Sample:Limit must be between 1 and 10", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("TokenMeter:Sample:Items:1:Name", result.FailureMessage, StringComparison.Ordinal);
        Assert.DoesNotContain("SampleOptions.", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ValidOptions_Succeeds()
    {
        var validator = new ConfigurationKeyValidator<SampleOptions>(new SampleOptionsValidator(), "TokenMeter:Sample");

        Assert.True(validator.Validate(Options.DefaultName, new SampleOptions { Limit = 3 }).Succeeded);
    }

    [Fact]
    public async Task AddValidatedOptions_CalledTwice_OneValidatorAndTheHostFailsAtStartNamingTheKey()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["TokenMeter:Sample:Limit"] = "11" }).Build());
        services.AddValidatedOptions<SampleOptions, SampleOptionsValidator>("TokenMeter:Sample");
        services.AddValidatedOptions<SampleOptions, SampleOptionsValidator>("TokenMeter:Sample");
        await using var provider = services.BuildServiceProvider();

        Assert.Single(provider.GetServices<IValidateOptions<SampleOptions>>());
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<SampleOptions>>().Value);
        Assert.Contains("TokenMeter:Sample:Limit", ex.Message, StringComparison.Ordinal);
    }

    internal sealed class SampleOptions
    {
        [Range(1, 10, ErrorMessage = "{0} must be between 1 and 10.")]
        public int Limit { get; set; } = 1;

        [ValidateEnumeratedItems]
        public IList<SampleItem> Items { get; } = [];
    }

    internal sealed class SampleItem
    {
        [Required]
        [MinLength(1)]
        public string Name { get; set; } = string.Empty;
    }
}

[OptionsValidator]
internal sealed partial class SampleOptionsValidator : IValidateOptions<ConfigurationKeyValidatorTests.SampleOptions>;
