using OpenAI;

var builder = WebApplication.CreateBuilder(args);

// Any authentication works; this one reads Authentication:Schemes:Bearer, which
// `dotnet user-jwts create --role admin` fills in for development.
builder.Services.AddAuthentication().AddJwtBearer();
builder.Services.AddAuthorization();

builder.Services.AddTokenMeter()        // metering, pricing, the batched writer
    .AddOpenAIClient()                  // a metered OpenAIClient: OPENAI_API_KEY, or TokenMeter:OpenAI:Endpoint/ApiKey
    .AddPostgresStore();                // ConnectionStrings:TokenMeter; leave out to keep usage in memory
// Each further feature is one call here: .AddBudgets(), .AddAlerts(), .AddUsageReports(), .AddStatements()

var app = builder.Build();
app.UseAuthentication();
app.UseAuthorization();

app.MapTokenMeterAdmin("/api/usage");   // role "admin"; /api/usage/me for any signed-in user

app.MapPost("/hint", async (HintRequest request, OpenAIClient openAI) =>
{
    var reply = await openAI.GetChatClient("gpt-4o-mini").CompleteChatAsync(request.Question);
    return new HintResponse(reply.Value.Content[0].Text);
})
.RequireAuthorization()
.WithUsageAttribution();                // charged to the signed-in user, under "/hint"

app.Run();

internal sealed record HintRequest(string Question);

internal sealed record HintResponse(string Hint);
