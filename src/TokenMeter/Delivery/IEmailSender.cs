namespace TokenMeter.Delivery;

/// <summary>
/// Sends email for usage reports and alert mails. TokenMeter holds no mail client of its own: add one
/// with <c>.AddSmtpEmail()</c> (package TokenMeter.Email, MailKit over SMTP) or register your own.
/// </summary>
public interface IEmailSender
{
    /// <summary>Whether the sender has what it needs to send (e.g. an SMTP host); when false, mail is not attempted.</summary>
    bool IsConfigured { get; }

    /// <summary>Sends one message; throws when the server refuses it (the caller retries).</summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes once the server accepted the message.</returns>
    ValueTask SendAsync(EmailMessage message, CancellationToken cancellationToken = default);
}
