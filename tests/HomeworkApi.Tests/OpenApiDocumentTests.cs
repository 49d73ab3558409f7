using System.Collections;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Primitives;

namespace HomeworkApi.Tests;

/// <summary>
/// The OpenAPI document (<c>/openapi/v1.json</c>): served in every environment to admins only, and
/// complete — every query parameter a route actually reads and every body it reads are in it. What a
/// route reads is observed, not declared: each route is called while the query and the body record
/// every name looked up and whether the body was read.
/// </summary>
public sealed partial class OpenApiDocumentTests
{
    [Fact]
    public async Task Document_IsServedInProduction_ToAdminsOnly_WithTheBearerScheme()
    {
        await using var app = new HomeworkApp(environment: "Production");
        using var anonymous = app.CreateClient();
        using var student = app.ClientWithToken((await app.RegisterAsync()).Token);
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/openapi/v1.json")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await student.GetAsync("/openapi/v1.json")).StatusCode);
        var document = await DocumentAsync(admin);

        var bearer = document["components"]!["securitySchemes"]!["Bearer"]!;
        Assert.Equal("http", bearer["type"]!.GetValue<string>());
        Assert.Equal("bearer", bearer["scheme"]!.GetValue<string>());
        Assert.Equal("JWT", bearer["bearerFormat"]!.GetValue<string>());
        Assert.NotNull(document["paths"]!["/api/usage/stats"]!["get"]!["security"]);
        Assert.NotNull(document["paths"]!["/api/users/{id}/role"]!["put"]!["security"]);
    }

    [Fact]
    public async Task Document_TypesExportsAsCsv_ChatStreamAsEventStream_NumbersAsNumbers_NoAnonymousTypes()
    {
        await using var app = new HomeworkApp(environment: "Production");
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());
        var document = await DocumentAsync(admin);
        var paths = document["paths"]!;

        foreach (var export in new[] { "/api/usage/export", "/api/usage/export/summary", "/api/usage/statements/export" })
        {
            Assert.NotNull(paths[export]!["get"]!["responses"]!["200"]!["content"]!["text/csv"]);
        }

        Assert.NotNull(paths["/api/chat"]!["post"]!["responses"]!["200"]!["content"]!["text/event-stream"]);
        var limit = Parameter(paths["/api/usage/summary"]!["get"]!, "limit");
        Assert.Equal("integer", limit["schema"]!["type"]!.GetValue<string>());
        Assert.Equal(500, limit["schema"]!["maximum"]!.GetValue<int>());
        Assert.Equal("date", Parameter(paths["/api/usage/export"]!["get"]!, "from")["schema"]!["format"]!.GetValue<string>());

        var text = document.ToJsonString();
        Assert.DoesNotContain("AnonymousType", text, StringComparison.Ordinal);
        var mixed = MixedNumberTypes().Matches(text).Select(m => m.Value).Distinct().ToList();
        Assert.True(mixed.Count == 0, "numbers typed as strings too: " + string.Join(", ", mixed));
    }

    [Fact]
    public async Task Document_ListsEveryQueryParameterAndRequestBody_ThatEachRouteReads()
    {
        var observed = new Observation();
        await using var app = new HomeworkApp(environment: "Production")
        {
            TestServices = s => s.AddSingleton<IStartupFilter>(new ObservingStartup(observed)),
        };
        using var admin = app.ClientWithToken(await app.AdminTokenAsync());
        var document = await DocumentAsync(admin);
        var paths = document["paths"]!.AsObject();

        var failures = new List<string>();
        var checkedRoutes = 0;
        foreach (var endpoint in app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            // Route handlers are what an API document describes (pages and the document's own routes opt out).
            if (endpoint.Metadata.GetMetadata<MethodInfo>() is null
                || endpoint.Metadata.GetMetadata<IExcludeFromDescriptionMetadata>() is { ExcludeFromDescription: true })
            {
                continue;
            }

            var pattern = "/" + RouteConstraint().Replace(endpoint.RoutePattern.RawText!.TrimStart('/'), "}");
            foreach (var method in endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"])
            {
                checkedRoutes++;
                var what = $"{method} {pattern}";
                if (paths[pattern]?[method.ToLowerInvariant()] is not JsonObject operation)
                {
                    failures.Add($"{what}: not in the document");
                    continue;
                }

                observed.Clear();
                using var request = new HttpRequestMessage(new HttpMethod(method), RouteParameter().Replace(pattern, "1"));
                if (method is "POST" or "PUT" or "PATCH")
                {
                    request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                }

                using var response = await admin.SendAsync(request);
                var documented = (operation["parameters"] as JsonArray ?? []).Where(p => p!["in"]!.GetValue<string>() == "query").Select(p => p!["name"]!.GetValue<string>()).ToHashSet(StringComparer.OrdinalIgnoreCase);
                foreach (var name in observed.QueryNames.Where(n => !documented.Contains(n)))
                {
                    failures.Add($"{what}: reads the query parameter '{name}', which the document does not list");
                }

                if (observed.BodyRead && operation["requestBody"] is null)
                {
                    failures.Add($"{what}: reads a body, which the document does not describe");
                }
            }
        }

        Assert.True(checkedRoutes >= 28, $"only {checkedRoutes} routes were checked");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    private static async Task<JsonObject> DocumentAsync(HttpClient admin)
    {
        using var response = await admin.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (JsonObject)JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }

    private static JsonNode Parameter(JsonNode operation, string name) =>
        operation["parameters"]!.AsArray().Single(p => p!["name"]!.GetValue<string>() == name)!;

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex RouteParameter();

    [GeneratedRegex(@":[^}]*\}")]
    private static partial Regex RouteConstraint();

    [GeneratedRegex(@"""type"":\[[^\]]*""integer""[^\]]*""string""[^\]]*\]|""type"":\[[^\]]*""number""[^\]]*""string""[^\]]*\]")]
    private static partial Regex MixedNumberTypes();

    /// <summary>What the last request read: query names looked up, and whether its body was read.</summary>
    private sealed class Observation
    {
        private readonly HashSet<string> _names = new(StringComparer.OrdinalIgnoreCase);

        public IReadOnlyCollection<string> QueryNames
        {
            get
            {
                lock (_names)
                {
                    return [.. _names];
                }
            }
        }

        public bool BodyRead { get; set; }

        public void Clear()
        {
            lock (_names)
            {
                _names.Clear();
            }

            BodyRead = false;
        }

        public void Add(string name)
        {
            lock (_names)
            {
                _names.Add(name);
            }
        }
    }

    private sealed class ObservingStartup(Observation observed) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                if (context.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal))
                {
                    context.Request.Query = new ObservedQuery(context.Request.Query, observed);
                    context.Request.Body = new ObservedBody(context.Request.Body, observed);
                }

                return nextMiddleware(context);
            });
            next(app);
        };
    }

    private sealed class ObservedQuery(IQueryCollection inner, Observation observed) : IQueryCollection
    {
        public int Count => inner.Count;

        public ICollection<string> Keys => inner.Keys;

        public StringValues this[string key]
        {
            get
            {
                observed.Add(key);
                return inner[key];
            }
        }

        public bool ContainsKey(string key)
        {
            observed.Add(key);
            return inner.ContainsKey(key);
        }

        public bool TryGetValue(string key, out StringValues value)
        {
            observed.Add(key);
            return inner.TryGetValue(key, out value);
        }

        public IEnumerator<KeyValuePair<string, StringValues>> GetEnumerator() => inner.GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private sealed class ObservedBody(Stream inner, Observation observed) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            observed.BodyRead = true;
            return inner.Read(buffer, offset, count);
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            observed.BodyRead = true;
            return inner.ReadAsync(buffer, cancellationToken);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
