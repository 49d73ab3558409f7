using System.ComponentModel.DataAnnotations;

namespace TokenMeter.Postgres;

/// <summary>Options of the PostgreSQL store, bound from the <c>TokenMeter:Postgres</c> configuration section.</summary>
public sealed class PostgresStoreOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Postgres";

    /// <summary>
    /// The schema holding TokenMeter's tables and views. Default <c>public</c>. Letters, digits and
    /// underscores, not starting with a digit, at most 63 characters; always quoted in SQL.
    /// </summary>
    [Required]
    [RegularExpression("^[A-Za-z_][A-Za-z0-9_]{0,62}$", ErrorMessage = "TokenMeter:Postgres:Schema must be letters, digits and underscores (not starting with a digit), at most 63 characters.")]
    public string Schema { get; set; } = "public";

    /// <summary>
    /// Whether the schema is created and migrated at start-up. Default true. Turn it off when a DBA
    /// installs the script from <see cref="PostgresSchema.GetCreationScript"/>.
    /// </summary>
    public bool InstallSchema { get; set; } = true;

    /// <summary>How many monthly partitions of <c>user_api_usage</c> to keep created beyond the current month. Default 2.</summary>
    [Range(0, 36)]
    public int PartitionsAhead { get; set; } = 2;

    /// <summary>
    /// When set, raw records of months older than this many whole months before the current one are
    /// dropped, a partition at a time. Rollups (and so all summaries) are kept. Default: keep everything.
    /// </summary>
    [Range(1, 1200)]
    public int? RetentionMonths { get; set; }

    /// <summary>Timeout of each SQL command in seconds. Default 30.</summary>
    [Range(1, 3600)]
    public int CommandTimeoutSeconds { get; set; } = 30;

    /// <summary>How long to wait before retrying when the database cannot be reached at start-up. Default 5 seconds.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan InstallRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often partitions ahead are created and retention applied. Default 1 hour.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How many records an instance stores between two folds of the pending sums
    /// into the rollups (a fold runs in the background; queries count the pending sums, so figures
    /// are exact either way). Larger folds cost less per record but leave more pending rows for the
    /// queries to add. Default 50,000.
    /// </summary>
    [Range(1, 10_000_000)]
    public int FoldEveryRecords { get; set; } = 50_000;

    /// <summary>How often the pending sums are folded however few records came in. Default 10 seconds.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan FoldInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether budgets and rate limits shared through PostgreSQL are decided from headroom slices:
    /// each instance claims a slice of a user's headroom under each limit in one round trip and
    /// decides that user's next calls in-process until the slice is used up or
    /// <see cref="SliceLifetime"/> ends; near a limit a slice is one call, so no limit is passed (see
    /// the package README, "Several app instances"). A budget change through any instance drops the
    /// slices of every instance at once (LISTEN/NOTIFY). Default true; false checks every call in the
    /// database (one round trip per check).
    /// </summary>
    public bool LocalSlices { get; set; } = true;

    /// <summary>
    /// How long a headroom slice decides calls before what it did not use is given back. Longer
    /// slices save more round trips for users who call less often; a user still calling in the last
    /// eighth of a slice's lifetime has the next slice claimed in the background, before it ends. A
    /// killed instance's unused budget slices are back at most this long after the reservation
    /// lease. Default 10 seconds.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan SliceLifetime { get; set; } = TimeSpan.FromSeconds(10);
}
