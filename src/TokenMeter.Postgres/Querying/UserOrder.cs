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
        var byUser = ByUser(rows, userOf);
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

    /// <summary>
    /// <paramref name="lines"/> (in statement order: by user id, then <see cref="CostThenEndpoint"/>) with
    /// <paramref name="changes"/> (at most one per user, endpoint and model) put in, in the same order: each takes the
    /// place of its user's line of the same endpoint and model (with <paramref name="add"/>, is added to it), or is a new
    /// line. Only the users with a change are ordered again; the other users' lines are copied as they are, so a month's
    /// lines with a few users' changes cost a copy, not a sort of every line.
    /// </summary>
    public static UserEndpointUsage[] Apply(UserEndpointUsage[] lines, List<UserEndpointUsage> changes, bool add)
    {
        if (changes.Count == 0)
        {
            return lines;
        }

        // Each changed user's lines with its changes, ordered again (and where the user's kept lines were); then one array
        // of the exact size (a month's lines are a large object: one allocation, not a list and its copy).
        var byUser = ByUser(changes, static c => c.UserId);
        var users = byUser.Keys.ToArray();
        Array.Sort(users, StringComparer.Ordinal);
        var changed = new (int Start, int End, List<UserEndpointUsage> Lines)[users.Length];
        var count = lines.Length;
        for (int u = 0, at = 0; u < users.Length; u++)
        {
            var start = at = FirstOf(lines, at, users[u]);
            for (; at < lines.Length && string.Equals(lines[at].UserId, users[u], StringComparison.Ordinal); at++)
            {
            }

            var own = new List<UserEndpointUsage>(new ArraySegment<UserEndpointUsage>(lines, start, at - start));
            foreach (var change in byUser[users[u]])
            {
                var i = own.FindIndex(l => string.Equals(l.Endpoint, change.Endpoint, StringComparison.Ordinal) && string.Equals(l.Model, change.Model, StringComparison.Ordinal));
                if (i < 0)
                {
                    own.Add(change);
                }
                else
                {
                    own[i] = add ? own[i] with { Figures = own[i].Figures + change.Figures } : change;
                }
            }

            own.Sort(CostThenEndpoint);
            changed[u] = (start, at, own);
            count += own.Count - (at - start);
        }

        // The other users' lines copied as they are, between the changed users'.
        var result = new UserEndpointUsage[count];
        var next = 0;
        var from = 0;
        foreach (var (start, end, own) in changed)
        {
            Array.Copy(lines, from, result, next, start - from);
            next += start - from;
            own.CopyTo(result, next);
            next += own.Count;
            from = end;
        }

        Array.Copy(lines, from, result, next, lines.Length - from);
        return result;
    }

    /// <summary>The rows of each user (one hash lookup per row), in their order.</summary>
    private static Dictionary<string, List<T>> ByUser<T>(List<T> rows, Func<T, string> userOf)
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

        return byUser;
    }

    /// <summary>The first index from <paramref name="from"/> on whose user id is not before <paramref name="user"/> (ordinal; a binary search).</summary>
    private static int FirstOf(UserEndpointUsage[] lines, int from, string user)
    {
        int low = from, high = lines.Length;
        while (low < high)
        {
            var mid = low + ((high - low) / 2);
            if (string.CompareOrdinal(lines[mid].UserId, user) < 0)
            {
                low = mid + 1;
            }
            else
            {
                high = mid;
            }
        }

        return low;
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
