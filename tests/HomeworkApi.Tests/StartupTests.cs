using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

public sealed class StartupTests
{
    [Theory]
    [InlineData(null, "is required")]
    [InlineData("too-short", "too short")]
    public void OutsideDevelopment_MissingOrShortSigningKey_FailsStartWithClearMessage(string? key, string expected)
    {
        using var app = new HomeworkApp(new Dictionary<string, string?> { ["Jwt:SigningKey"] = key ?? string.Empty }, environment: "Production");

        var error = Assert.ThrowsAny<Exception>(() => app.Server);

        var message = error is AggregateException a ? a.Flatten().InnerExceptions[0].Message : error.Message;
        Assert.Contains("Jwt:SigningKey", message, StringComparison.Ordinal);
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }
}
