using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;

namespace TokenMeter.Testing.Scenarios;

/// <summary>HTTP calls to the sample, and what its PostgreSQL database holds.</summary>
public static class SampleClient
{
    public const string HintBody = """{"problemText":"Solve 2x + 3 = 7 for x.","previousHints":[],"gradeLevel":"8","subject":"math"}""";

    public static HttpClient Create(Uri baseAddress, int connections = 256) =>
        new(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        };

    /// <summary>POST /api/hint; throws unless 200.</summary>
    public static async Task HintAsync(HttpClient http, CancellationToken cancellationToken = default, string body = HintBody)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("/api/hint", content, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new HttpRequestException($"/api/hint answered {(int)response.StatusCode}: {text}", null, response.StatusCode);
        }

        await response.Content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
    }

    public static async Task<string> LoginAsync(HttpClient http, string username, string password)
    {
        using var response = await http.PostAsJsonAsync("/api/auth/login", new { username, password }).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false);
        return body!["token"]!.GetValue<string>();
    }

    public static HttpClient WithToken(Uri baseAddress, string token)
    {
        var http = Create(baseAddress, 16);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    /// <summary>Rows of user_api_usage: all, and distinct ids (a replay counted twice would make them differ).</summary>
    public static async Task<(long Rows, long DistinctIds)> CountRecordsAsync(string connectionString, string? where = null)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT count(*), count(DISTINCT id) FROM user_api_usage" + (where is null ? string.Empty : " WHERE " + where), connection);
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        await reader.ReadAsync().ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>
    /// Polls <see cref="CountRecordsAsync"/> until it reaches <paramref name="expected"/> or the time is up
    /// (a database still starting counts as "not yet"); returns the last count, which the caller judges.
    /// </summary>
    public static async Task<(long Rows, long DistinctIds)> WaitForRecordsAsync(string connectionString, long expected, TimeSpan timeout)
    {
        var polled = await Eventually.PollAsync(
            async _ => await CountRecordsAsync(connectionString).ConfigureAwait(false),
            count => count.Rows >= expected,
            timeout,
            TimeSpan.FromMilliseconds(100),
            transient: static ex => ex is NpgsqlException).ConfigureAwait(false);
        return polled.Value;
    }

    public static int SpoolFileCount(string spoolDirectory) =>
        Directory.Exists(spoolDirectory) ? Directory.EnumerateFiles(spoolDirectory, "*", SearchOption.AllDirectories).Count() : 0;

    /// <summary>Waits until <paramref name="spoolDirectory"/> holds no file (the spool was replayed) or the time is up; returns the files left.</summary>
    public static async Task<int> WaitForEmptySpoolAsync(string spoolDirectory, TimeSpan timeout)
    {
        var polled = await Eventually.PollAsync(_ => ValueTask.FromResult(SpoolFileCount(spoolDirectory)), static files => files == 0, timeout, TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
        return polled.Value;
    }
}
