using Microsoft.AspNetCore.Http;
using TokenMeter.RateLimits;

namespace TokenMeter.AspNetCore.Budgets;

/// <summary>
/// A request's rate-limit check, handed by the rate-limit filter to the budget filter that runs
/// after it on the same endpoint when both are kept in one shared store: the budget filter then
/// makes every check of the call in one step (one statement with PostgreSQL) and hands the
/// decision back. Nothing between the two filters calls the model.
/// </summary>
internal sealed class DeferredRateCheck(UserRateLimiter limiter, string partitionKey, string? userId, long tokens, Func<HttpContext, RateLimitDecision, IResult> refuse)
{
    private static readonly object Key = new();
    private static readonly object BudgetCheckedKey = new();

    public UserRateLimiter Limiter => limiter;

    public string PartitionKey => partitionKey;

    public string? UserId => userId;

    public long Tokens => tokens;

    /// <summary>The 429 of a refused rate-limit decision (the rate-limit filter's, logged).</summary>
    public IResult Refuse(HttpContext http, RateLimitDecision decision) => refuse(http, decision);

    /// <summary>The rate-limit decision, once the budget filter has made it.</summary>
    public RateLimitDecision? Decision { get; set; }

    /// <summary>Whether the budget filter has already run for this request (it runs before the rate-limit filter).</summary>
    public static bool BudgetChecked(HttpContext http) => http.Items.ContainsKey(BudgetCheckedKey);

    /// <summary>Called by the budget filter first: takes the check handed to it, if any.</summary>
    public static DeferredRateCheck? Take(HttpContext http)
    {
        http.Items[BudgetCheckedKey] = true;
        if (http.Items.TryGetValue(Key, out var value) && value is DeferredRateCheck check)
        {
            http.Items.Remove(Key);
            return check;
        }

        return null;
    }

    public void HandTo(HttpContext http) => http.Items[Key] = this;
}

/// <summary>Marks an endpoint with budget enforcement, so the rate-limit filter knows a budget filter follows.</summary>
internal sealed class BudgetEnforcementMetadata
{
    public static readonly BudgetEnforcementMetadata Instance = new();
}
