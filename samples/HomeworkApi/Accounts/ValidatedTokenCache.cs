using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace HomeworkApi.Accounts;

/// <summary>
/// The bearer tokens' validation, with each valid token's outcome kept until the token expires: a token
/// seen before (the same string, character for character) skips decoding, the signature check and building
/// its claims; each request gets its own copy of the claims (the role check may change them). Only a token
/// that passed every check (signature, HS256, issuer, audience, lifetime) is kept, and never at or past its
/// <c>exp</c>: from then on it goes through the full validation again, which refuses it. What may change
/// during a token's life (the account still exists, its role) is still read on every request
/// (<see cref="AccountRoleResolver"/>, in <c>OnTokenValidated</c>, which runs for kept tokens too). One
/// cache per JWT bearer options instance, whose validation parameters (key, issuer, audience, algorithm)
/// are fixed for its life. At most <see cref="MaxTokens"/> tokens are kept; past it the cache starts over.
/// </summary>
internal sealed class CachingJsonWebTokenHandler : JsonWebTokenHandler
{
    /// <summary>Tokens kept at most (a few KB each).</summary>
    internal const int MaxTokens = 10_000;

    private readonly ConcurrentDictionary<string, Validated> _valid = new(StringComparer.Ordinal);

    /// <summary>Tokens kept now (tests).</summary>
    internal int Count => _valid.Count;

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        ArgumentNullException.ThrowIfNull(validationParameters);
        var now = DateTime.UtcNow;   // the clock the lifetime check itself reads
        if (token is not null && _valid.TryGetValue(token, out var kept))
        {
            if (now < kept.Token.ValidTo)
            {
                return kept.NewResult();
            }

            _valid.TryRemove(new KeyValuePair<string, Validated>(token, kept));
        }

        var result = await base.ValidateTokenAsync(token, validationParameters).ConfigureAwait(false);
        if (result.IsValid && result.SecurityToken is JsonWebToken jwt && now < jwt.ValidTo && result.ClaimsIdentity is { } identity)
        {
            if (_valid.Count >= MaxTokens)
            {
                _valid.Clear();
            }

            _valid[token!] = new Validated(jwt, identity.Clone(), result.Issuer, result.TokenType);
        }

        return result;
    }

    /// <summary>A valid token's outcome: the parsed token and a pristine copy of its claims, never handed out.</summary>
    private sealed record Validated(JsonWebToken Token, ClaimsIdentity Identity, string? Issuer, string? TokenType)
    {
        public TokenValidationResult NewResult() => new()
        {
            IsValid = true,
            SecurityToken = Token,
            ClaimsIdentity = Identity.Clone(),
            Issuer = Issuer,
            TokenType = TokenType,
        };
    }
}
