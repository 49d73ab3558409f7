using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;

namespace TokenMeter.AspNetCore.Reports;

/// <summary>Sends mail over SMTP with MailKit, one connection per message (reports are rare).</summary>
internal sealed class SmtpReportMailer(IOptionsMonitor<UsageReportOptions> options) : IReportMailer
{
    public int RecipientCount => options.CurrentValue.IsConfigured ? options.CurrentValue.To.Count : 0;

    public async ValueTask SendAsync(string subject, string html, string text, IReadOnlyDictionary<string, string>? headers, CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        if (!settings.IsConfigured)
        {
            throw new InvalidOperationException("TokenMeter:Reports:Smtp:Host and TokenMeter:Reports:To must be configured to send mail.");
        }

        var smtp = settings.Smtp;
        using var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(smtp.From ?? throw new InvalidOperationException("TokenMeter:Reports:Smtp:From is not configured.")));
        foreach (var to in settings.To)
        {
            message.To.Add(MailboxAddress.Parse(to));
        }

        message.Subject = subject;
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            message.Headers.Add(name, value);
        }

        message.Body = new BodyBuilder { HtmlBody = html, TextBody = text }.ToMessageBody();

        using var client = new SmtpClient();
        var security = !smtp.UseTls ? SecureSocketOptions.None : smtp.Port == 465 ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTls;
        await client.ConnectAsync(smtp.Host!, smtp.Port, security, cancellationToken).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(smtp.Username))
        {
            await client.AuthenticateAsync(smtp.Username, smtp.Password ?? string.Empty, cancellationToken).ConfigureAwait(false);
        }

        await client.SendAsync(message, cancellationToken).ConfigureAwait(false);
        await client.DisconnectAsync(quit: true, cancellationToken).ConfigureAwait(false);
    }
}
