using System.Net;
using System.Net.Sockets;

namespace TokenMeter.AspNetCore.RateLimits;

/// <summary>The partition keys of the per-user limits.</summary>
public static class RateLimitPartitions
{
    /// <summary>The partition of a call: the charged user's id, else <c>ip:</c> and <see cref="AddressKey"/> of the client.</summary>
    /// <param name="userId">The charged user, or null when anonymous.</param>
    /// <param name="clientAddress">The client's address.</param>
    /// <returns>The key.</returns>
    public static string For(string? userId, IPAddress? clientAddress) => userId is not null ? "user:" + userId : "ip:" + AddressKey(clientAddress);

    /// <summary>
    /// The partition of an anonymous caller: its IPv4 address, or the /64 prefix of an IPv6 one
    /// (one subscriber's network, in which a client can pick a new address for every request).
    /// </summary>
    /// <param name="address">The client's address.</param>
    /// <returns>The key part.</returns>
    public static string AddressKey(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var bytes = address.GetAddressBytes();
            Array.Clear(bytes, 8, 8);
            return new IPAddress(bytes) + "/64";
        }

        return address.ToString();
    }
}
