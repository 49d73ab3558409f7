namespace TokenMeter.Budgets;

/// <summary>Where budgets are kept, so they survive restarts and hold across app instances.</summary>
public interface IBudgetStore
{
    /// <summary>The default and every per-user override.</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The budgets.</returns>
    ValueTask<BudgetSettings> GetBudgetsAsync(CancellationToken cancellationToken = default);

    /// <summary>The limits that apply to a user: the user's override if any, else the default, else null.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The limits, or null when none apply.</returns>
    ValueTask<BudgetLimit?> GetEffectiveBudgetAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>Sets the default limits; null removes the default.</summary>
    /// <param name="limit">The limits.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when stored.</returns>
    ValueTask SetDefaultBudgetAsync(BudgetLimit? limit, CancellationToken cancellationToken = default);

    /// <summary>Creates or replaces a user's override.</summary>
    /// <param name="budget">The override.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when stored.</returns>
    ValueTask SetUserBudgetAsync(UserBudget budget, CancellationToken cancellationToken = default);

    /// <summary>Removes a user's override, so the default applies again.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>True when an override existed.</returns>
    ValueTask<bool> DeleteUserBudgetAsync(string userId, CancellationToken cancellationToken = default);
}
