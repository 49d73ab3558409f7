namespace TokenMeter.Email;

/// <summary>The SMTP server TokenMeter's mail goes through, bound from <c>TokenMeter:Reports:Smtp</c>.</summary>
public sealed class SmtpOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Reports:Smtp";

    /// <summary>The SMTP host; null (the default) leaves mail off.</summary>
    public string? Host { get; set; }

    /// <summary>The port. Default 587 (submission with STARTTLS); 465 connects over TLS at once.</summary>
    public int Port { get; set; } = 587;

    /// <summary>The user name to sign in with; null sends without signing in.</summary>
    public string? Username { get; set; }

    /// <summary>The password of <see cref="Username"/>. Never logged.</summary>
    public string? Password { get; set; }

    /// <summary>Default true: TLS is required (STARTTLS, or TLS on connect on port 465).</summary>
    public bool UseTls { get; set; } = true;

    /// <summary>The sender address, e.g. <c>TokenMeter &lt;reports@example.com&gt;</c>.</summary>
    public string? From { get; set; }
}
