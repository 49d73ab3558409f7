using System.Buffers;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace HomeworkApi.Homework;

/// <summary>
/// A text field: once trimmed, not empty and at most <c>length</c> characters. A
/// <see cref="MaxLengthAttribute"/>, so the API document shows the limit; the sentences name the JSON field.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class TextAttribute(int length) : MaxLengthAttribute(length)
{
    /// <summary>The end of the sentence when the text is too long (default: "is too long: at most N characters.").</summary>
    public string? OverLengthMessage { get; init; }

    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext)
    {
        if (value is not string text)
        {
            return ValidationResult.Success;
        }

        var length = text.AsSpan().Trim().Length;
        var name = BodyRules.FieldName(validationContext);
        return length == 0 ? BodyRules.Fail(name, "must not be empty.")
            : length > Length ? BodyRules.Fail(name, OverLengthMessage ?? $"is too long: at most {Length:N0} characters.")
            : ValidationResult.Success;
    }
}

/// <summary>A list of texts, each at most <c>length</c> characters once trimmed (empty ones are dropped later).</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class TextItemsAttribute(int length) : ValidationAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext)
    {
        if (value is not IEnumerable<string?> items)
        {
            return ValidationResult.Success;
        }

        var name = BodyRules.FieldName(validationContext);
        foreach (var item in items)
        {
            if (item is null)
            {
                return BodyRules.Fail(name, "must be an array of strings.");
            }

            if (item.AsSpan().Trim().Length > length)
            {
                return BodyRules.Fail(name, $"items are too long: at most {length:N0} characters each.");
            }
        }

        return ValidationResult.Success;
    }
}

/// <summary>The metadata tags: at most 20, keys of 1 to 100 characters, values of at most 1,000.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class TagsAttribute : ValidationAttribute
{
    public const int MaxTags = 20;

    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext)
    {
        if (value is not Dictionary<string, string> tags)
        {
            return ValidationResult.Success;
        }

        var count = 0;
        foreach (var (key, text) in tags)
        {
            var error = count++ == MaxTags ? $"metadata may hold at most {MaxTags} tags."
                : key.Length is 0 or > 100 ? "metadata keys must be 1 to 100 characters long."
                : text.Length > 1000 ? $"metadata.{key} is too long: at most 1,000 characters."
                : null;
            if (error is not null)
            {
                return new ValidationResult(error);
            }
        }

        return ValidationResult.Success;
    }
}

internal static class BodyRules
{
    /// <summary>The JSON name of the field being checked (the record's properties are camelCase on the wire).</summary>
    public static string FieldName(ValidationContext context) =>
        JsonNamingPolicy.CamelCase.ConvertName(context.MemberName ?? context.DisplayName);

    /// <summary>A property's fault (the validation key is the property's path, so no member name is given).</summary>
    public static ValidationResult Fail(string name, string rest) => new(name + " " + rest);
}

/// <summary>
/// Thrown by the homework converters with the whole sentence to answer (the reader keeps it); a
/// converter that only knows the value is wrong throws a plain <see cref="JsonException"/>, and the
/// reader names the field from the exception's path.
/// </summary>
internal sealed class BodyFieldException(string sentence) : JsonException(sentence);

/// <summary><c>userId</c>: a string, or a whole number kept as its decimal text (<c>7</c> and <c>"7"</c> are the same user).</summary>
internal sealed class UserIdConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number when reader.TryGetInt64(out var number) => number.ToString(CultureInfo.InvariantCulture),
        JsonTokenType.Number => throw new BodyFieldException("userId must be a whole number or a string."),
        _ => throw new BodyFieldException("userId must be a string or a number."),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

/// <summary>A string, or a number kept as the text it was sent as (grade levels, session and problem ids).</summary>
internal sealed class ScalarTextConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number => RawText(ref reader),
        _ => throw new JsonException(),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);

    public static string RawText(ref Utf8JsonReader reader) =>
        Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan);
}

/// <summary>
/// <c>metadata</c>: a JSON object whose values are kept as text (a string as itself, any other value as
/// the JSON it was sent as); null values are left out.
/// </summary>
internal sealed class TagsConverter : JsonConverter<Dictionary<string, string>>
{
    public override Dictionary<string, string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException();
        }

        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = reader.GetString()!;
            reader.Read();
            switch (reader.TokenType)
            {
                case JsonTokenType.Null:
                    break;
                case JsonTokenType.String:
                    tags[key] = reader.GetString()!;
                    break;
                case JsonTokenType.StartObject or JsonTokenType.StartArray:
                    using (var value = JsonDocument.ParseValue(ref reader))
                    {
                        tags[key] = value.RootElement.GetRawText();
                    }

                    break;
                default:
                    tags[key] = ScalarTextConverter.RawText(ref reader);
                    break;
            }
        }

        return tags.Count == 0 ? null : tags;
    }

    public override void Write(Utf8JsonWriter writer, Dictionary<string, string> value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (key, text) in value)
        {
            writer.WriteString(key, text);
        }

        writer.WriteEndObject();
    }
}
