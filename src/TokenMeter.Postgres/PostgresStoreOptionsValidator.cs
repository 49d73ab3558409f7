using Microsoft.Extensions.Options;

namespace TokenMeter.Postgres;

/// <summary>Source-generated validation of <see cref="PostgresStoreOptions"/> (no reflection).</summary>
[OptionsValidator]
internal sealed partial class PostgresStoreOptionsValidator : IValidateOptions<PostgresStoreOptions>;
