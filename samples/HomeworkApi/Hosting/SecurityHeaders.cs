using Scalar.AspNetCore;

namespace HomeworkApi.Hosting;

/// <summary>
/// Headers on every answer (pages, API, errors): a Content-Security-Policy the portal satisfies (its
/// scripts and styles are files of this origin, nothing inline), no framing, no MIME sniffing, no
/// referrer. HSTS is added by <c>UseHsts</c> outside Development.
/// </summary>
internal static class SecurityHeaders
{
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public static IApplicationBuilder UseSecurityHeaders(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        // Set when the answer starts, so error pages written after a response was cleared carry them too
        // (one static callback with the context as its state: no closure per request).
        context.Response.OnStarting(SetHeaders, context);
        return next(context);
    });

    private static readonly Func<object, Task> SetHeaders = static state =>
    {
        var context = (HttpContext)state;
        var headers = context.Response.Headers;
        // The API reference page (Scalar) runs one inline module with a per-request nonce and styles its
        // components inline; every other answer keeps the strict policy.
        headers.ContentSecurityPolicy = context.Items[ScalarOptions.NonceHttpContextItemKey] is string nonce
            ? ContentSecurityPolicy.Replace("script-src 'self'", $"script-src 'self' 'nonce-{nonce}'", StringComparison.Ordinal)
                .Replace("style-src 'self'", "style-src 'self' 'unsafe-inline'", StringComparison.Ordinal)
            : ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        return Task.CompletedTask;
    };
}
