using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Mvc.ApiExplorer;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using Microsoft.AspNetCore.Mvc.ModelBinding;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary>
/// The query parameters an admin route reads by hand (so that a bad value gets the route's own
/// sentence, and a parameter given twice is refused), declared for API documents: a signature
/// lambda whose parameters carry the names, types, <c>[Description]</c>, <c>[Range]</c> and defaults.
/// </summary>
internal sealed class AdminQueryMetadata(MethodInfo signature)
{
    public IReadOnlyList<ParameterInfo> Parameters { get; } = signature.GetParameters();
}

internal static class AdminQuery
{
    /// <summary>Declares the query parameters of <paramref name="signature"/> on the endpoint (the lambda is never called).</summary>
    public static RouteHandlerBuilder WithQuery(this RouteHandlerBuilder builder, Delegate signature) =>
        builder.WithMetadata(new AdminQueryMetadata(signature.Method));
}

/// <summary>
/// Adds the parameters of <see cref="AdminQueryMetadata"/> to the API Explorer's description of each
/// admin route, so any OpenAPI generator built on it (Microsoft.AspNetCore.OpenApi, Swashbuckle) lists
/// them with their types, ranges, defaults and descriptions.
/// </summary>
internal sealed class AdminQueryApiDescriptionProvider : IApiDescriptionProvider
{
    private static readonly EmptyModelMetadataProvider MetadataProvider = new();

    /// <summary>After the minimal-API provider (order -1100) has described the endpoints.</summary>
    public int Order => 0;

    public void OnProvidersExecuting(ApiDescriptionProviderContext context)
    {
        foreach (var description in context.Results)
        {
            if (description.ActionDescriptor.EndpointMetadata?.OfType<AdminQueryMetadata>().LastOrDefault() is not { } query)
            {
                continue;
            }

            foreach (var parameter in query.Parameters)
            {
                if (parameter.Name is not { } name || description.ParameterDescriptions.Any(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase)))
                {
                    continue;
                }

                description.ParameterDescriptions.Add(new ApiParameterDescription
                {
                    Name = name,
                    Source = BindingSource.Query,
                    Type = parameter.ParameterType,
                    ModelMetadata = MetadataProvider.GetMetadataForType(parameter.ParameterType),
                    IsRequired = false,
                    DefaultValue = parameter.HasDefaultValue ? parameter.DefaultValue : null,
                    ParameterDescriptor = new QueryParameterDescriptor(parameter),
                });
            }
        }
    }

    public void OnProvidersExecuted(ApiDescriptionProviderContext context)
    {
    }

    private sealed class QueryParameterDescriptor : ParameterDescriptor, IParameterInfoParameterDescriptor
    {
        public QueryParameterDescriptor(ParameterInfo parameter)
        {
            ParameterInfo = parameter;
            Name = parameter.Name!;
            ParameterType = parameter.ParameterType;
            BindingInfo = new BindingInfo { BindingSource = BindingSource.Query };
        }

        public ParameterInfo ParameterInfo { get; }
    }
}
