using System.Security.Claims;
using System.Text;
using HomeworkApi.Accounts;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HomeworkApi.Tests;

/// <summary>
/// The bearer tokens' validation keeps a valid token's outcome until the token expires: never an invalid
/// token, never past <c>exp</c>, and each use gets claims of its own.
/// </summary>
public sealed class ValidatedTokenCacheTests
{
    private const string Key = "validated-token-cache-test-key-that-is-long-enough-0123";

    [Fact]
    public async Task ValidToken_IsKept_AndEachUseGetsItsOwnClaims()
    {
        var handler = new CachingJsonWebTokenHandler { MapInboundClaims = false };
        var token = Token(Key, DateTime.UtcNow.AddHours(1));

        var first = await handler.ValidateTokenAsync(token, Parameters());
        first.ClaimsIdentity.AddClaim(new Claim("role", "admin"));   // what the role check may do to one request's claims
        var second = await handler.ValidateTokenAsync(token, Parameters());

        Assert.True(first.IsValid);
        Assert.True(second.IsValid);
        Assert.Equal(1, handler.Count);
        Assert.NotSame(first.ClaimsIdentity, second.ClaimsIdentity);
        Assert.Equal(["student"], second.ClaimsIdentity.FindAll("role").Select(c => c.Value));
        Assert.Equal("42", second.ClaimsIdentity.FindFirst("sub")?.Value);
        Assert.IsType<CaseSensitiveClaimsIdentity>(second.ClaimsIdentity);
        Assert.Same(first.SecurityToken, second.SecurityToken);
    }

    [Fact]
    public async Task InvalidTokens_AreNeverKept()
    {
        var handler = new CachingJsonWebTokenHandler { MapInboundClaims = false };
        var otherKey = Token("another-key-that-is-long-enough-for-hs256-0123456789", DateTime.UtcNow.AddHours(1));
        var expired = Token(Key, DateTime.UtcNow.AddHours(-1));

        for (var i = 0; i < 2; i++)
        {
            Assert.False((await handler.ValidateTokenAsync(otherKey, Parameters())).IsValid);
            Assert.False((await handler.ValidateTokenAsync(expired, Parameters())).IsValid);
            Assert.False((await handler.ValidateTokenAsync(otherKey[..^2], Parameters())).IsValid);
        }

        Assert.Equal(0, handler.Count);
    }

    [Fact]
    public async Task KeptToken_IsRefusedOnceItExpires()
    {
        var handler = new CachingJsonWebTokenHandler { MapInboundClaims = false };
        var token = Token(Key, DateTime.UtcNow.AddSeconds(2));
        Assert.True((await handler.ValidateTokenAsync(token, Parameters())).IsValid);
        Assert.Equal(1, handler.Count);

        await Task.Delay(TimeSpan.FromSeconds(2.5));

        var late = await handler.ValidateTokenAsync(token, Parameters());
        Assert.False(late.IsValid);
        Assert.IsType<SecurityTokenExpiredException>(late.Exception);
        Assert.Equal(0, handler.Count);
    }

    private static TokenValidationParameters Parameters() => new()
    {
        ValidIssuer = "HomeworkApi",
        ValidAudience = "HomeworkApi",
        IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Key)),
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        ClockSkew = TimeSpan.Zero,
    };

    private static string Token(string key, DateTime expires) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Issuer = "HomeworkApi",
        Audience = "HomeworkApi",
        NotBefore = expires.AddHours(-2),
        IssuedAt = expires.AddHours(-2),
        Expires = expires,
        Subject = new ClaimsIdentity([new Claim("sub", "42"), new Claim("unique_name", "ada"), new Claim("role", "student")]),
        SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(key)), SecurityAlgorithms.HmacSha256),
    });
}
