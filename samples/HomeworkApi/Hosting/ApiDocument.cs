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
        o.AddOperationTransformer((operation, context, _) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            var homework = metadata.OfType<TagsAttribute>().Any(t => t.Tags.Contains("Homework"));
            if ((metadata.OfType<IAuthorizeData>().Any() || homework) && !metadata.OfType<IAllowAnonymous>().Any())
            {
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = [] });
            }

            return Task.CompletedTask;
        });
    });

    public static void MapApiDocument(this WebApplication app)
    {
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
