namespace TokenMeter;

/// <summary>
/// Wraps one part of the store (e.g. the budget store in the limit cache). Registered by a feature;
/// applied when the part is first resolved, whatever the order the store and the feature were added in.
/// </summary>
/// <typeparam name="TService">The store part: <see cref="Storage.IUsageStore"/>, <see cref="Querying.IUsageQueries"/>, <see cref="Budgets.IBudgetStore"/> or <see cref="Storage.IDeliveryLog"/>.</typeparam>
internal interface IStoreDecorator<TService>
    where TService : class
{
    TService Decorate(TService inner, IServiceProvider services);
}
