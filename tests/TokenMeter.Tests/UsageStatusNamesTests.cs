namespace TokenMeter.Tests;

public sealed class UsageStatusNamesTests
{
    [Theory]
    [InlineData(UsageStatus.Ok, "ok")]
    [InlineData(UsageStatus.HttpError, "http_error")]
    [InlineData(UsageStatus.TransportError, "transport_error")]
    [InlineData(UsageStatus.Cancelled, "cancelled")]
    [InlineData(UsageStatus.UsageMissing, "usage_missing")]
    [InlineData(UsageStatus.Estimated, "estimated")]
    public void GetName_EveryStatus_SnakeCaseNameThatParsesBack(UsageStatus status, string name)
    {
        Assert.Equal(name, UsageStatusNames.GetName(status));
        Assert.Equal(status, UsageStatusNames.Parse(name));
    }

    [Fact]
    public void GetName_EveryDefinedStatus_HasADistinctName()
    {
        var names = Enum.GetValues<UsageStatus>().Select(UsageStatusNames.GetName).ToList();

        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.All(names, n => Assert.Matches("^[a-z]+(_[a-z]+)*$", n));
    }

    [Fact]
    public void GetName_StatusThisVersionDoesNotName_WrittenAsItsNumberAndReadBack()
    {
        var future = (UsageStatus)42;

        Assert.Equal("42", UsageStatusNames.GetName(future));
        Assert.Equal(future, UsageStatusNames.Parse("42"));
    }

    [Theory]
    [InlineData("OK")]
    [InlineData("HttpError")]
    [InlineData("")]
    [InlineData(" ok")]
    public void TryParse_NotAWireName_False(string text)
    {
        Assert.False(UsageStatusNames.TryParse(text, out _));
        Assert.Throws<FormatException>(() => UsageStatusNames.Parse(text));
    }
}
