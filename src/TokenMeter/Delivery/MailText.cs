using System.Globalization;

namespace TokenMeter.Delivery;

/// <summary>How amounts read in TokenMeter's mail (reports and alerts alike).</summary>
internal static class MailText
{
    /// <summary>Dollars, exact to 8 decimals: <c>$1,234.50</c>, <c>$0.00012345</c>.</summary>
    public static string Money(decimal value) => "$" + value.ToString("#,0.00######", CultureInfo.InvariantCulture);
}
