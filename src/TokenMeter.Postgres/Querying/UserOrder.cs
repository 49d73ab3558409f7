using TokenMeter.Querying;

namespace TokenMeter.Postgres.Querying;

/// <summary>
/// Puts the rows of a many-user read in user-id order (ordinal, as the in-memory store orders them)
/// in the app instead of in PostgreSQL: for the dashboards' bulk reads (every user's days for the
/// forecasts, every user's lines for a month's statements) the server's sort of tens of thousands of
/// rows by a text key cost about twice the rest of the query. Here the rows are bucketed by user
/// (one hash lookup each), the few distinct user ids are sorted, and each user's handful of rows.
/// </summary>
internal static class UserOrder
{
    /// <summary>
    /// Orders <paramref name="rows"/> by user id, then within a user by <paramref name="withinUser"/>; rows of one
    /// user that compare equal are combined with <paramref name="merge"/> when given (else the comparison must be total).
    /// </summary>
    public static List<T> Sort<T>(List<T> rows, Func<T, string> userOf, Comparison<T> withinUser, Func<T, T, T>? merge = null)
    {
        var byUser = new Dictionary<string, List<T>>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            var user = userOf(row);
            if (!byUser.TryGetValue(user, out var own))
            {
                own = [];
                byUser.Add(user, own);
            }

            own.Add(row);
        }

        var users = byUser.Keys.ToArray();
        Array.Sort(users, StringComparer.Ordinal);
        var sorted = new List<T>(rows.Count);
        foreach (var user in users)
        {
            var own = byUser[user];
            own.Sort(withinUser);
            if (merge is null)
            {
                sorted.AddRange(own);
                continue;
            }

            var current = own[0];
            for (var i = 1; i < own.Count; i++)
            {
                if (withinUser(current, own[i]) == 0)
                {
                    current = merge(current, own[i]);
                }
                else
                {
                    sorted.Add(current);
                    current = own[i];
                }
            }

            sorted.Add(current);
        }

        return sorted;
    }

    /// <summary>Highest cost first, then endpoint and model (null first, ordinal): a statement's lines.</summary>
    public static int CostThenEndpoint(UserEndpointUsage a, UserEndpointUsage b)
    {
        var byCost = b.Figures.CostUsd.CompareTo(a.Figures.CostUsd);
        if (byCost != 0)
        {
            return byCost;
        }

        var byEndpoint = string.CompareOrdinal(a.Endpoint, b.Endpoint);
        return byEndpoint != 0 ? byEndpoint : string.CompareOrdinal(a.Model, b.Model);
    }
}
