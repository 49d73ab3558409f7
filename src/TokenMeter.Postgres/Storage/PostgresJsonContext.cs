using System.Text.Json.Serialization;

namespace TokenMeter.Postgres.Storage;

/// <summary>Source-generated JSON for the <c>metadata</c> column.</summary>
[JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class PostgresJsonContext : JsonSerializerContext;
