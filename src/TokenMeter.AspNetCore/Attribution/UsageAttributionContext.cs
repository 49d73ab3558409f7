using Microsoft.AspNetCore.Http;
using TokenMeter.Attribution;

namespace TokenMeter.AspNetCore.Attribution;

/// <summary>
/// The attribution of one request, before its <see cref="UsageScope"/> opens. Enrichers may change
/// any value: charge a user named in the body, add the session, the problem or tags.
/// </summary>
public sealed class UsageAttributionContext
{
    internal UsageAttributionContext(HttpContext httpContext, IList<object?> arguments)
    {
        HttpContext = httpContext;
        Arguments = arguments;
    }

    /// <summary>The request.</summary>
    public HttpContext HttpContext { get; }

    /// <summary>The handler's bound arguments (the parsed body among them).</summary>
    public IList<object?> Arguments { get; }

    /// <summary>The user charged; starts as the signed-in user's id claim.</summary>
    public string? UserId { get; set; }

    /// <summary>The endpoint label; starts as the route pattern or the endpoint's <see cref="UsageLabelMetadata"/>.</summary>
    public string? Endpoint { get; set; }

    /// <summary>The caller's session.</summary>
    public string? SessionId { get; set; }

    /// <summary>The problem (or other business object) the request is about.</summary>
    public string? ProblemId { get; set; }

    /// <summary>Free-form tags recorded with every call of the request.</summary>
    public IDictionary<string, string> Tags { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The first bound argument of type <typeparamref name="T"/>, e.g. the request body.</summary>
    /// <typeparam name="T">The argument type.</typeparam>
    /// <returns>The argument, or default.</returns>
    public T? GetArgument<T>() => Arguments.OfType<T>().FirstOrDefault();

    internal UsageContext ToUsageContext() => new()
    {
        UserId = string.IsNullOrEmpty(UserId) ? null : UserId,
        Endpoint = Endpoint,
        SessionId = SessionId,
        ProblemId = ProblemId,
        Tags = Tags.Count == 0 ? null : new Dictionary<string, string>(Tags, StringComparer.Ordinal),
    };
}

/// <summary>Enriches the attribution of every attributed request; register as many as needed as services.</summary>
public interface IUsageAttributionEnricher
{
    /// <summary>Changes <paramref name="context"/> before the request's scope opens.</summary>
    /// <param name="context">The request's attribution.</param>
    /// <returns>A task that completes when done.</returns>
    ValueTask EnrichAsync(UsageAttributionContext context);
}

/// <summary>Endpoint metadata overriding the usage label (the route pattern by default).</summary>
/// <param name="Label">The label recorded as the calls' endpoint.</param>
public sealed record UsageLabelMetadata(string Label);
