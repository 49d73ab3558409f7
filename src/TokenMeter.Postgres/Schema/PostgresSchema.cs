using TokenMeter.Postgres.Schema;

namespace TokenMeter.Postgres;

/// <summary>The SQL of TokenMeter's PostgreSQL schema, for DBAs who install it themselves.</summary>
public static class PostgresSchema
{
    /// <summary>
    /// The whole schema (every migration, each recorded in <c>tokenmeter_migrations</c> exactly as the
    /// start-up installer records it) as one script to run with <c>psql -f</c>. Running it again
    /// skips what is already applied.
    /// </summary>
    /// <param name="schema">The schema name (letters, digits, underscores). Default <c>public</c>.</param>
    /// <returns>The script.</returns>
    public static string GetCreationScript(string schema = "public") => PostgresMigrator.CreationScript(PostgresIdentifiers.ValidateSchema(schema));

    /// <summary>The number of the newest migration this build knows.</summary>
    public static int LatestVersion => PostgresMigration.Latest;
}
