using System.Security.Claims;

namespace TokenMeter.AspNetCore;

/// <summary>Options of the admin endpoints and request attribution, bound from <c>TokenMeter:AspNetCore</c>.</summary>
public sealed class TokenMeterAspNetCoreOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:AspNetCore";

    /// <summary>
    /// The authorization policy the admin routes require. When null (the default), they require
    /// the role <see cref="AdminRole"/>.
    /// </summary>
    public string? AdminPolicy { get; set; }

    /// <summary>The role the admin routes require when <see cref="AdminPolicy"/> is null. Default <c>admin</c>.</summary>
    public string AdminRole { get; set; } = "admin";

    /// <summary>
    /// Claim types holding the signed-in user's id, tried in order. Default
    /// <see cref="ClaimTypes.NameIdentifier"/>, then <c>sub</c>.
    /// </summary>
    public IList<string> UserIdClaimTypes { get; } = [ClaimTypes.NameIdentifier, "sub"];

    /// <summary>The signed-in user's id, from the first of <see cref="UserIdClaimTypes"/> present; null when signed out.</summary>
    /// <param name="user">The request's user.</param>
    /// <returns>The id, or null.</returns>
    public string? GetUserId(ClaimsPrincipal? user)
    {
        if (user?.Identity?.IsAuthenticated != true)
        {
            return null;
        }

        foreach (var type in UserIdClaimTypes)
        {
            var value = user.FindFirst(type)?.Value;
            if (!string.IsNullOrEmpty(value))
            {
                return value;
            }
        }

        return null;
    }
}
