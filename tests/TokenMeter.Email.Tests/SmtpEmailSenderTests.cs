using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.Delivery;
using TokenMeter.Reports;
using TokenMeter.Testing.Smtp;

namespace TokenMeter.Email.Tests;

public sealed class SmtpEmailSenderTests
{
    [Fact]
    public async Task SendAsync_LoopbackServer_ReceivesRecipientsSubjectBothBodiesAndHeaders()
    {
        await using var smtp = LoopbackSmtpServer.Start();
        await using var services = Build(new()
        {
            ["TokenMeter:Reports:Smtp:Host"] = "127.0.0.1",
            ["TokenMeter:Reports:Smtp:Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture),
            ["TokenMeter:Reports:Smtp:UseTls"] = "false",
            ["TokenMeter:Reports:Smtp:From"] = "TokenMeter <reports@example.test>",
        });
        var sender = services.GetRequiredService<IEmailSender>();

        Assert.True(sender.IsConfigured);
        await sender.SendAsync(new EmailMessage(
            ["ops@example.test", "Finance <finance@example.test>"],
            "Subject line",
            "<p>html</p>",
            "text",
            new Dictionary<string, string> { ["X-TokenMeter-Event"] = "budget.threshold" }));

        var message = await smtp.NextAsync();
        Assert.Equal("Subject line", message.Subject);
        Assert.Equal(["ops@example.test", "finance@example.test"], message.To.Mailboxes.Select(m => m.Address));
        Assert.Equal("reports@example.test", message.From.Mailboxes.Single().Address);
        Assert.Equal("budget.threshold", message.Headers["X-TokenMeter-Event"]);
        Assert.Contains("<p>html</p>", message.HtmlBody, StringComparison.Ordinal);
        Assert.Equal("text", message.TextBody?.Trim());
    }

    [Fact]
    public async Task IsConfigured_NoHost_FalseAndTheRecipientMailerSendsNothing()
    {
        await using var services = Build(new() { ["TokenMeter:Reports:To:0"] = "ops@example.test" }, reports: false);

        Assert.False(services.GetRequiredService<IEmailSender>().IsConfigured);
        Assert.Equal(0, services.GetRequiredService<RecipientMailer>().RecipientCount);
    }

    [Fact]
    public async Task Options_HostWithoutFrom_FailsNamingTheKey()
    {
        await using var services = Build(new() { ["TokenMeter:Reports:Smtp:Host"] = "127.0.0.1", ["TokenMeter:Reports:Smtp:Port"] = "0" });

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<SmtpOptions>>().Value);
        Assert.Contains("TokenMeter:Reports:Smtp:From", error.Message, StringComparison.Ordinal);
        Assert.Contains("TokenMeter:Reports:Smtp:Port", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReportOptions_ScheduleWithoutSmtpHost_FailsNamingTheKeys()
    {
        await using var services = Build(new() { ["TokenMeter:Reports:Schedule:0"] = "daily" });

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<UsageReportOptions>>().Value);
        Assert.Contains("TokenMeter:Reports:Smtp:Host", error.Message, StringComparison.Ordinal);
        Assert.Contains("TokenMeter:Reports:To", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddSmtpEmail_Twice_OneSender()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddTokenMeter().AddSmtpEmail().AddSmtpEmail();

        Assert.Single(services, d => d.ServiceType == typeof(IEmailSender));
        await using var provider = services.BuildServiceProvider();
        Assert.IsType<SmtpEmailSender>(provider.GetRequiredService<IEmailSender>());
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings, bool reports = true)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging();
        var tokenMeter = services.AddTokenMeter().AddSmtpEmail();
        if (reports)
        {
            tokenMeter.AddUsageReports();
        }
        else
        {
            tokenMeter.AddAlerts();
        }

        return services.BuildServiceProvider();
    }
}
