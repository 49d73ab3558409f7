using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Validation;

namespace HomeworkApi.Homework;

/// <summary>
/// Describes the homework body records to minimal-API validation (<c>AddValidation</c>): each record's
/// public properties with validation attributes, and the record itself (its <see cref="IValidatableObject"/>
/// checks). .NET 10's validation source generator does not describe records that bind themselves
/// (<c>BindAsync</c>), so this resolver does what its generated one would, from the same attributes.
/// </summary>
internal sealed class HomeworkBodyValidation : IValidatableInfoResolver
{
    private readonly ConcurrentDictionary<Type, IValidatableInfo> _types = new();

    public bool TryGetValidatableTypeInfo(Type type, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IValidatableInfo? validatableInfo)
    {
        validatableInfo = typeof(HomeworkBody).IsAssignableFrom(type) ? _types.GetOrAdd(type, static t => new BodyType(t)) : null;
        return validatableInfo is not null;
    }

    public bool TryGetValidatableParameterInfo(ParameterInfo parameterInfo, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IValidatableInfo? validatableInfo)
    {
        validatableInfo = null;
        return false;
    }

    /// <summary>A record's own properties (the base records are described on their own, and validated after them).</summary>
    private sealed class BodyType(Type type) : ValidatableTypeInfo(type, Members(type))
    {
        protected override ValidationAttribute[] GetValidationAttributes() => [];

        private static List<ValidatablePropertyInfo> Members(Type type) =>
        [
            .. type.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
                .Where(p => p.GetCustomAttribute<JsonIgnoreAttribute>() is null && p.GetCustomAttributes<ValidationAttribute>().Any())
                .Select(p => new BodyProperty(type, p)),
        ];
    }

    private sealed class BodyProperty(Type declaringType, PropertyInfo property)
        : ValidatablePropertyInfo(declaringType, property.PropertyType, property.Name, property.Name)
    {
        private readonly ValidationAttribute[] _attributes = [.. property.GetCustomAttributes<ValidationAttribute>()];

        protected override ValidationAttribute[] GetValidationAttributes() => _attributes;
    }
}
