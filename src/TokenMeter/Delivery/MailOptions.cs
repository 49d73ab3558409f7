namespace TokenMeter.Delivery;

/// <summary>Who gets TokenMeter's mail: <c>TokenMeter:Reports:To</c> (reports, and alerts with <c>TokenMeter:Alerts:Email</c>).</summary>
internal sealed class MailOptions
{
    public const string SectionName = "TokenMeter:Reports";

    public IList<string> To { get; } = [];
}
