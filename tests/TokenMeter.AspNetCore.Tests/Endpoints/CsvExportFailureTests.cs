using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using TokenMeter.AspNetCore.Export;
using TokenMeter.AspNetCore.Tests.Hosting;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>
/// A CSV export that fails: before its first byte, a proper error (503 problem details when the store
/// cannot be reached); after it, a logged failure and an aborted connection, never a file that looks
/// complete but is cut short.
/// </summary>
public sealed class CsvExportFailureTests
{
    [Fact]
    public async Task FailureAfterTheFirstRows_IsLogged_AndTheDownloadFails_NotACompleteLookingFile()
    {
        var logs = new FakeLogCollector();
        await using var app = await TestApp.StartAsync(b =>
        {
            b.Services.AddSingleton<IUserDirectory>(new FailingDirectory(failOnLookup: 3, new InvalidOperationException("directory broke")));
            b.Logging.AddProvider(new FakeLoggerProvider(logs));
        });
        // Three chunks of rows, each with users not seen yet: the directory fails on the third chunk's lookup.
        await app.SeedAsync(Enumerable.Range(0, (2 * UsageCsv.DetailedChunkSize) + 600).Select(i => TestApp.Record(i.ToString(CultureInfo.InvariantCulture), 0.001m, at: TestApp.Now.AddSeconds(-i))).ToArray());

        using var response = await app.Admin().GetAsync("/api/usage/export", HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsStringAsync());
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 4701 && r.Level == LogLevel.Error);
    }

    [Fact]
    public async Task StoreUnreachableBeforeTheFirstByte_Is503ProblemWithRetryAfter()
    {
        await using var app = await TestApp.StartAsync(b => b.Services.AddSingleton<IUserDirectory>(new FailingDirectory(failOnLookup: 1, new TimeoutException("store timed out"))));
        await app.SeedAsync(TestApp.Record("1", 0.001m));

        using var response = await app.Admin().GetAsync("/api/usage/export/summary");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Null(response.Content.Headers.ContentDisposition);
        Assert.Contains("store-unavailable", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private sealed class FailingDirectory(int failOnLookup, Exception failure) : IUserDirectory
    {
        private int _lookups;

        public ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _lookups) >= failOnLookup)
            {
                throw failure;
            }

            IReadOnlyDictionary<string, UserDirectoryEntry> found = userIds.ToDictionary(id => id, id => new UserDirectoryEntry(id, "user" + id, null));
            return ValueTask.FromResult(found);
        }

        public ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default) => ValueTask.FromResult(true);
    }
}
