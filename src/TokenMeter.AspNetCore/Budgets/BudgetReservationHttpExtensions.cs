using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore.Budgets;

/// <summary>Turns a refused <see cref="BudgetReservation"/> into an HTTP reply.</summary>
public static class BudgetReservationHttpExtensions
{
    /// <summary>
    /// The reply for a refused call: 429 with <c>Retry-After</c> (seconds to the next UTC month) and
    /// problem type <see cref="BudgetProblemTypes.Exceeded"/>, or 503 with
    /// <see cref="BudgetProblemTypes.Unavailable"/> when budgets could not be read.
    /// </summary>
    /// <param name="reservation">A refused reservation.</param>
    /// <returns>The result to return from the endpoint.</returns>
    public static IResult ToRefusalResult(this BudgetReservation reservation)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        if (reservation.IsAllowed)
        {
            throw new InvalidOperationException("The reservation was not refused.");
        }

        return new BudgetRefusalResult(reservation);
    }

    private sealed class BudgetRefusalResult(BudgetReservation reservation) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            var retryAfter = (long)Math.Ceiling(reservation.RetryAfter.TotalSeconds);
            httpContext.Response.Headers[HeaderNames.RetryAfter] = retryAfter.ToString(CultureInfo.InvariantCulture);
            var status = reservation.Status;
            var problem = reservation.Reason switch
            {
                BudgetRefusalReason.Unavailable => TypedResults.Problem(
                    detail: "Budgets could not be checked, so the call was not made. Try again shortly.",
                    statusCode: StatusCodes.Status503ServiceUnavailable,
                    title: "Budget check unavailable",
                    type: BudgetProblemTypes.Unavailable),
                _ => TypedResults.Problem(
                    detail: reservation.Reason == BudgetRefusalReason.TokenLimit
                        ? $"The monthly token budget of {status?.Limit?.MonthlyTokens} tokens is reached; it resets at the start of the next month (UTC)."
                        : $"The monthly cost budget of {status?.Limit?.MonthlyCostUsd?.ToString(CultureInfo.InvariantCulture)} USD is reached; it resets at the start of the next month (UTC).",
                    statusCode: StatusCodes.Status429TooManyRequests,
                    title: "Budget exceeded",
                    type: BudgetProblemTypes.Exceeded,
                    extensions: new Dictionary<string, object?>
                    {
                        ["limit"] = reservation.Reason == BudgetRefusalReason.TokenLimit ? "monthlyTokens" : "monthlyCostUsd",
                        ["monthlyCostUsd"] = status?.Limit?.MonthlyCostUsd,
                        ["monthlyTokens"] = status?.Limit?.MonthlyTokens,
                        ["spentCostUsd"] = status?.CostUsd,
                        ["spentTokens"] = status?.Tokens,
                        ["retryAfterSeconds"] = retryAfter,
                    }),
            };
            return problem.ExecuteAsync(httpContext);
        }
    }
}
