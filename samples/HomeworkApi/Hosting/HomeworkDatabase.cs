using Npgsql;

namespace HomeworkApi.Hosting;

/// <summary>The one PostgreSQL data source (connection pool) of the app, shared by the usage store and the accounts.</summary>
internal sealed class HomeworkDatabase(NpgsqlDataSource dataSource) : IAsyncDisposable, IDisposable
{
    public NpgsqlDataSource DataSource { get; } = dataSource;

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();

    public void Dispose() => DataSource.Dispose();
}
