using System.Net.Mail;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace TokenMeter.Delivery;

/// <summary>Sends a message to the configured recipients through the app's <see cref="IEmailSender"/>, if it has one.</summary>
internal sealed class RecipientMailer(IServiceProvider services, IOptionsMonitor<MailOptions> options)
{
    private readonly IEmailSender? _sender = services.GetService<IEmailSender>();

    /// <summary>How many recipients a message goes to; 0 when mail is not configured (no sender, no host, no recipients).</summary>
    public int RecipientCount => _sender?.IsConfigured == true ? options.CurrentValue.To.Count : 0;

    /// <summary>Whether an email sender is registered and configured (recipients aside).</summary>
    public bool HasSender => _sender?.IsConfigured == true;

    public ValueTask SendAsync(string subject, string html, string text, IReadOnlyDictionary<string, string> headers, CancellationToken cancellationToken)
    {
        if (RecipientCount == 0)
        {
            throw new InvalidOperationException("TokenMeter:Reports:Smtp:Host and TokenMeter:Reports:To must be configured to send mail.");
        }

        return _sender!.SendAsync(new EmailMessage(options.CurrentValue.To.ToArray(), subject, html, text, headers), cancellationToken);
    }

    /// <summary>Whether <paramref name="address"/> is an email address (with or without a display name).</summary>
    public static bool IsAddress(string? address) => MailAddress.TryCreate(address, out _);
}
