namespace TokenMeter.Metering;

/// <summary>Makes the ids of usage records: UUID version 7 (RFC 9562), time-ordered by the call's start.</summary>
internal static class UsageIds
{
    /// <summary>
    /// A version 7 UUID for a call that started at <paramref name="createdAt"/>: 48 bits of Unix
    /// milliseconds, then 74 random bits. Unlike <see cref="Guid.CreateVersion7(DateTimeOffset)"/>,
    /// which asks the operating system for secure random bytes (a system call on every id), the
    /// random bits come from <see cref="Random.Shared"/>: an id must be unique, not unguessable,
    /// and 74 bits from a randomly seeded generator per thread make a clash within one millisecond
    /// as unlikely as with the secure source.
    /// </summary>
    /// <param name="createdAt">When the call started; not before 1970.</param>
    /// <returns>The id.</returns>
    public static Guid NewVersion7(DateTimeOffset createdAt)
    {
        var milliseconds = createdAt.ToUnixTimeMilliseconds();
        ArgumentOutOfRangeException.ThrowIfNegative(milliseconds, nameof(createdAt));

        Span<byte> random = stackalloc byte[10];
        Random.Shared.NextBytes(random);
        return Build(milliseconds, random);
    }

    /// <summary>
    /// The same version 7 UUID every time for the same instant and key (e.g. a Batch API request
    /// id): its 74 "random" bits come from a SHA-256 of the key, so recording it twice stores it once.
    /// </summary>
    /// <param name="createdAt">When the call started; not before 1970.</param>
    /// <param name="key">What identifies the call.</param>
    /// <returns>The id.</returns>
    public static Guid FromKey(DateTimeOffset createdAt, string key)
    {
        var milliseconds = createdAt.ToUnixTimeMilliseconds();
        ArgumentOutOfRangeException.ThrowIfNegative(milliseconds, nameof(createdAt));
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key));
        return Build(milliseconds, hash.AsSpan(0, 10));
    }

    private static Guid Build(long milliseconds, ReadOnlySpan<byte> random)
    {
        return new Guid(
            (int)(milliseconds >> 16),
            (short)milliseconds,
            (short)(0x7000 | ((random[0] << 8 | random[1]) & 0x0FFF)),
            (byte)(0x80 | (random[2] & 0x3F)),
            random[3],
            random[4],
            random[5],
            random[6],
            random[7],
            random[8],
            random[9]);
    }
}
