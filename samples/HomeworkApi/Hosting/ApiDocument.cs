using HomeworkApi.Accounts;
using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace HomeworkApi.Hosting;

/// <summary>
/// The OpenAPI document (<c>/openapi/v1.json</c>) and its UI (<c>/admin/api-reference</c>, Scalar), in
/// every environment. The document needs an admin's bearer token; the UI page is only a shell whose
/// configuration module (<c>wwwroot/admin/api-reference.js</c>) fetches the document with the token the
/// portal keeps for the tab, so the UI is usable right after signing in on <c>/admin</c>.
/// </summary>
internal static class ApiDocument
{
    public const string DocumentPath = "/openapi/v1.json";
    public const string UiPath = "/admin/api-reference";
    private const string BearerScheme = "Bearer";

    public static IServiceCollection AddApiDocument(this IServiceCollection services) => services.AddOpenApi(o =>
    {
        o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "HomeworkApi";
            document.Info.Description = "Homework routes metered by TokenMeter, accounts, and TokenMeter's admin API under /api/usage. "
                + "Sign in with POST /api/auth/login and send the token as Authorization: Bearer.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "JWT",
                Description = "The token from POST /api/auth/login (HS256; the role is read from the account store on each request).",
            };
            return Task.CompletedTask;
        });

        // Routes that need a signed-in user say so; the homework routes take a token when there is one.
        o.AddOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            var homework = metadata.OfType<TagsAttribute>().Any(t => t.Tags.Contains("Homework"));
            if ((metadata.OfType<IAuthorizeData>().Any() || homework) && !metadata.OfType<IAllowAnonymous>().Any())
            {
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = [] });
            }

            // A route that answers server-sent events too (TypedResults.ServerSentEvents): its 200 lists text/event-stream
            // beside the JSON answer (two Produces for one status would keep only one of them).
            if (metadata.OfType<EventStreamMetadata>().LastOrDefault() is { } events
                && operation.Responses?.TryGetValue("200", out var ok) == true && ok is OpenApiResponse response)
            {
                response.Content ??= new Dictionary<string, OpenApiMediaType>();
                response.Content["text/event-stream"] = new OpenApiMediaType
                {
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String, Description = events.Description },
                };
            }

            // A body the route reads itself (a homework record's BindAsync, an account body read by hand) is described from its record.
            if (metadata.OfType<JsonBodyMetadata>().LastOrDefault() is { } body && operation.RequestBody is null)
            {
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["application/json"] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(body.Type, null, cancellationToken) },
                    },
                };
            }
        });
    });

    /// <summary>
    /// Documents the JSON body <typeparamref name="T"/> that the route reads itself. Unlike
    /// <c>Accepts</c>, it adds no Content-Type check to routing, so a wrong Content-Type still gets the
    /// route's own 400 sentence rather than a bare 415.
    /// </summary>
    public static RouteHandlerBuilder WithJsonBody<T>(this RouteHandlerBuilder builder) => builder.WithJsonBody(typeof(T));

    /// <inheritdoc cref="WithJsonBody{T}(RouteHandlerBuilder)"/>
    public static RouteHandlerBuilder WithJsonBody(this RouteHandlerBuilder builder, Type body) => builder.WithMetadata(new JsonBodyMetadata(body));

    public static void MapApiDocument(this WebApplication app)
    {
        // The document takes no query parameters (its handler would read a document name from one).
        app.Use((context, next) =>
        {
            if (context.Request.Path.Equals(DocumentPath, StringComparison.OrdinalIgnoreCase))
            {
                context.Request.QueryString = QueryString.Empty;
            }

            return next(context);
        });
        app.MapOpenApi(DocumentPath).RequireAuthorization(policy => policy.RequireRole(Roles.Admin));
        app.MapScalarApiReference(UiPath, o => o
                .WithTitle("HomeworkApi reference")
                .WithOpenApiRoutePattern(DocumentPath)
                .WithJavaScriptConfiguration("/admin/api-reference.js")
                .DisableDefaultFonts()
                .WithNonce())
            .ExcludeFromDescription();
    }
}

/// <summary>The route also answers <c>text/event-stream</c> (server-sent events), described by <paramref name="Description"/>.</summary>
internal sealed record EventStreamMetadata(string Description);

/// <summary>The JSON body a route reads itself (not through framework body binding), for the API document.</summary>
internal sealed record JsonBodyMetadata(Type Type);
