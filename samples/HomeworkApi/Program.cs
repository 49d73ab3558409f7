using HomeworkApi.Accounts;
using HomeworkApi.Diagnostics;
using HomeworkApi.Homework;
using HomeworkApi.Hosting;
using HomeworkApi.Simulation;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.Tokens;
using Npgsql;
using TokenMeter;
using TokenMeter.AspNetCore;
using TokenMeter.RateLimits;

var builder = WebApplication.CreateBuilder(args);
var settings = HomeworkSettings.Load(builder.Configuration, builder.Environment);
builder.Services.AddSingleton(settings);
builder.Services.AddSingleton(TimeProvider.System);

// Errors are RFC 9457 problem details everywhere, including the empty 401/403/404 of the framework.
builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.Complete);

// PostgreSQL unreachable → 503 with Retry-After on every route (the admin API answers it itself).
builder.Services.AddExceptionHandler<StoreUnavailableExceptionHandler>();

// A request Kestrel refuses while the app reads it (a body over the 30 MB limit: 413) keeps its status
// instead of becoming a 500.
builder.Services.Configure<ExceptionHandlerOptions>(o => o.StatusCodeSelector = ex => ex is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError);

// A request Kestrel refuses before any middleware runs (a malformed request line, %00 in the path, headers
// over the limit) gets problem details too, instead of Kestrel's empty 400.
builder.WebHost.ConfigureKestrel(k => k.ConfigureEndpointDefaults(listen => listen.UseRejectionProblems()));

// Accounts and JWT bearer sign-in (CONTRACT §2).
builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
{
    // A valid token's validation is kept until it expires (the account and role are still checked per request).
    o.TokenHandlers.Clear();
    o.TokenHandlers.Add(new CachingJsonWebTokenHandler());
    o.MapInboundClaims = false;

    // Nothing reads the bearer token back from the authentication properties: not storing it saves its copies per request.
    o.SaveToken = false;
    o.TokenValidationParameters = new TokenValidationParameters
    {
        ValidIssuer = settings.JwtIssuer,
        ValidAudience = settings.JwtAudience,
        IssuerSigningKey = new SymmetricSecurityKey(settings.SigningKey),
        NameClaimType = "unique_name",
        RoleClaimType = "role",
        ClockSkew = TimeSpan.FromSeconds(30),

        // HS256 only: a token signed with any other algorithm (HS512, none, RS256 with a confused key) is refused.
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
    };

    // The token proves who signed in; what they may do comes from the account store (a deleted or demoted account loses it).
    o.Events = new JwtBearerEvents
    {
        OnTokenValidated = context => context.HttpContext.RequestServices.GetRequiredService<AccountRoleResolver>().ApplyAsync(context),
    };
});
builder.Services.AddAuthorization();
builder.Services.AddAccountThrottles(settings);

// The app's own frontend may call the homework and account routes from its origins (Homework:Cors:AllowedOrigins,
// default none). Bearer tokens travel in the Authorization header, so credentials (cookies) are never allowed;
// the admin API and portal carry no CORS policy and stay same-origin.
builder.Services.AddCors(o => o.AddPolicy(HomeworkCors.PolicyName, policy => policy
    .WithOrigins([.. settings.CorsAllowedOrigins])
    .WithMethods(HttpMethods.Get, HttpMethods.Post)
    .WithHeaders("Authorization", "Content-Type")
    .WithExposedHeaders("Retry-After")
    .SetPreflightMaxAge(TimeSpan.FromMinutes(10))));

NpgsqlDataSource? dataSource = null;
if (settings.UsesPostgres)
{
    dataSource = NpgsqlDataSource.Create(settings.ConnectionString!);
    builder.Services.AddSingleton(new HomeworkDatabase(dataSource));
    builder.Services.AddSingleton<IAccountStore>(sp => new PostgresAccountStore(sp.GetRequiredService<HomeworkDatabase>().DataSource));
}
else
{
    builder.Services.AddSingleton<IAccountStore, InMemoryAccountStore>();
}

builder.Services.AddSingleton<AccountService>();
builder.Services.AddSingleton<AccountRoleResolver>();
builder.Services.AddSingleton<IUserDirectory, AccountUserDirectory>();
builder.Services.AddHostedService<AdminSeeder>();

// TokenMeter: metering of every model call, usage store, admin usage API, attribution, budgets.
var tokenMeter = builder.Services.AddTokenMeter();
if (dataSource is not null)
{
    tokenMeter.AddPostgresStore(dataSource);
}

// Each feature is one call; the admin API maps the routes of the features added here.
tokenMeter.AddTokenMeterAspNetCore()
    .AddBudgets()                 // TokenMeter:Budgets; budget routes and enforcement
    .AddAlerts()                  // TokenMeter:Alerts; budget.threshold and platform.daily_cost webhooks
    .AddUsageReports()            // TokenMeter:Reports; scheduled and on-demand email reports
    .AddStatements()              // TokenMeter:Billing; statements and statement.closed webhooks
    .AddSmtpEmail();              // TokenMeter:Reports:Smtp (TokenMeter.Email)

// Per-user requests and tokens per minute (Homework:RateLimits), kept in PostgreSQL when it is
// configured, so they hold across every instance of the app.
tokenMeter.AddRateLimits(o =>
{
    o.RequestsPerMinute = settings.RequestsPerMinute;
    o.TokensPerMinute = settings.TokensPerMinute;
});
tokenMeter.AddOpenAIClient(o =>
{
    o.ApiKey = settings.OpenAIApiKey ?? (settings.SimulatedModel ? "simulated" : "none");
    o.Endpoint = settings.SimulatedModel ? new Uri("http://simulated-model.invalid/v1") : settings.OpenAIEndpoint;
    o.MaxRetries = Math.Clamp(settings.OpenAIMaxRetries, 0, 10);
    o.NetworkTimeout = settings.OpenAITimeout;
});
// The model client's HttpClient logs nothing at this app's levels (System.Net.Http.HttpClient: Warning; the app logs
// every failed model call itself), yet its logging handlers open a log scope and time every request: leave them out.
builder.Services.AddHttpClient(TokenMeterOpenAIOptions.HttpClientName).RemoveAllLoggers();
if (settings.SimulatedModel)
{
    // Registered after AddOpenAIClient, so it replaces the socket handler of the metered client.
    builder.Services.AddSingleton<SimulatedModelState>();
    builder.Services.AddHttpClient(TokenMeterOpenAIOptions.HttpClientName)
        .ConfigurePrimaryHttpMessageHandler(sp => new SimulatedModelHandler(sp.GetRequiredService<SimulatedModelState>(), sp.GetRequiredService<TimeProvider>(), settings.SimulatedChunkDelay));
}

builder.Services.AddSingleton<HomeworkModelClient>();
builder.Services.AddHealthChecks().AddTokenMeter();   // tokenmeter-writer and tokenmeter-store (the database)
// Numbers are numbers on the wire (the web default also reads them from strings, which the API document
// would then type as integer-or-string), and field names are matched exactly as the document spells them.
// The homework bodies are source-generated (HomeworkJsonContext) and checked by minimal-API validation.
builder.Services.ConfigureHttpJsonOptions(o =>
{
    o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
    o.SerializerOptions.PropertyNameCaseInsensitive = false;
    o.SerializerOptions.TypeInfoResolverChain.Insert(0, HomeworkJsonContext.Default);
});
builder.Services.AddValidation(o => o.Resolvers.Insert(0, new HomeworkBodyValidation()));
builder.Services.AddApiDocument();   // /openapi/v1.json (admins) and its UI /admin/api-reference, in every environment

var app = builder.Build();

var startupLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("HomeworkApi");
if (settings.SimulatedModel)
{
    Log.SimulatedModel(startupLog);
}
else
{
    Log.ModelEndpoint(startupLog, settings.OpenAIEndpoint?.ToString() ?? "OpenAI (https://api.openai.com/v1)");
}

if (dataSource is null)
{
    Log.InMemoryStorage(startupLog);
}
else
{
    var parsed = new NpgsqlConnectionStringBuilder(settings.ConnectionString);
    Log.PostgresStorage(startupLog, parsed.Database, parsed.Host);
}

if (settings.SigningKeyIsEphemeral)
{
    Log.EphemeralSigningKey(startupLog);
}

// Where to go once it listens: the portal and the students' page, at every address it listens on.
app.Lifetime.ApplicationStarted.Register(() =>
{
    var addresses = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
        .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses ?? [];
    foreach (var address in addresses)
    {
        var root = address.TrimEnd('/');
        Log.PortalUrls(startupLog, root + "/admin", root + "/usage");
    }
});

app.UseSecurityHeaders();
if (!app.Environment.IsDevelopment())
{
    app.UseHsts();
}

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseStaticFiles();
app.UseCors();
app.UseAuthentication();
AccountRoleResolver.UseStoreFailureOfSignIn(app);   // a token that could not be checked for want of the store: 503
app.UseAuthorization();
app.UseRateLimiter();

app.MapApiDocument();

app.MapAuthEndpoints();
app.MapUserAdminEndpoints();
app.MapHomeworkEndpoints();
app.MapTokenMeterAdmin("/api/usage");
app.MapHealthChecks("/health", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions { ResponseWriter = HealthResponse.WriteAsync });
app.MapGet("/api/info", (HomeworkSettings s) => TypedResults.Ok(new AppInfo(
    s.SimulatedModel,
    s.UsesPostgres ? "postgresql" : "memory",
    new FeatureModels(s.Models.Analyze, s.Models.Verify, s.Models.ValidateImage, s.Models.Hint, s.Models.Chat)))).WithTags("Info").WithSummary("How the app runs: simulated model or not, where data is kept, the model of each feature.");
app.MapGet("/admin", (IWebHostEnvironment env) => Results.File(env.WebRootFileProvider.GetFileInfo("admin/index.html").CreateReadStream(), "text/html; charset=utf-8"))
    .ExcludeFromDescription();
app.MapGet("/usage", (IWebHostEnvironment env) => Results.File(env.WebRootFileProvider.GetFileInfo("usage/index.html").CreateReadStream(), "text/html; charset=utf-8")).ExcludeFromDescription();
app.MapGet("/", () => Results.Redirect("/admin")).ExcludeFromDescription();

// Browsers ask for /favicon.ico on pages without an icon link (the API reference): the portal's icon.
app.MapGet("/favicon.ico", () => Results.Redirect("/shared/icon.svg")).ExcludeFromDescription();

app.Run();

/// <summary>Entry point, visible to the end-to-end tests.</summary>
public partial class Program;
