using System.Buffers.Text;

namespace HomeworkApi.Homework;

/// <summary>The image of a body: <c>imageBase64</c> (base64 or a data URI) or <c>imageUrl</c> (http(s) or a data URI), checked and decoded once.</summary>
internal static class HomeworkImages
{
    public const int MaxImageBytes = 10 * 1024 * 1024;
    public const int MaxUrlLength = 4096;

    /// <summary>The image (null when neither field is given), or the sentence to answer 400 with.</summary>
    public static (HomeworkImage? Image, string? Error) Read(string? imageBase64, string? imageUrl)
    {
        if (imageBase64 is not null && imageUrl is not null)
        {
            return (null, "Send either imageBase64 or imageUrl, not both.");
        }

        if (imageUrl is not null)
        {
            var text = imageUrl.Trim();
            if (text.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
            {
                return Decode("imageUrl", text);
            }

            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) || text.Length > MaxUrlLength)
            {
                return (null, "imageUrl must be an absolute http(s) URL or a data: URI.");
            }

            return (new HomeworkImage(null, null, uri), null);
        }

        return imageBase64 is null ? (null, null) : Decode("imageBase64", imageBase64);
    }

    /// <summary>Plain base64 or a data URI (<c>data:image/png;base64,...</c>) of a PNG, JPEG, GIF or WebP image of at most 10 MiB.</summary>
    private static (HomeworkImage? Image, string? Error) Decode(string name, string text)
    {
        string? declaredType = null;
        var payload = text.AsSpan().Trim();
        if (payload.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            var comma = payload.IndexOf(',');
            var header = comma < 0 ? ReadOnlySpan<char>.Empty : payload[5..comma];
            if (comma < 0 || !header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            {
                return (null, $"{name} is not a base64 data URI: expected data:image/<type>;base64,<data>.");
            }

            declaredType = header[..^7].ToString().ToLowerInvariant();
            payload = payload[(comma + 1)..];
        }

        if (payload.IsEmpty)
        {
            return (null, $"{name} must not be empty.");
        }

        // Refuse oversized images before decoding anything: base64 holds 3 bytes per 4 characters.
        var tooLarge = $"{name} is larger than 10 MiB; send a smaller or more compressed image.";
        if ((long)payload.Length / 4 * 3 > MaxImageBytes + 3)
        {
            return (null, tooLarge);
        }

        if (!Base64.IsValid(payload, out var decodedLength))
        {
            return (null, $"{name} is not valid base64.");
        }

        if (decodedLength > MaxImageBytes)
        {
            return (null, tooLarge);
        }

        var bytes = new byte[decodedLength];
        if (!Convert.TryFromBase64Chars(payload, bytes, out var written))
        {
            return (null, $"{name} is not valid base64.");
        }

        var sniffed = Sniff(bytes.AsSpan(0, written));
        if (sniffed is null)
        {
            return (null, $"{name} is not a PNG, JPEG, GIF or WebP image.");
        }

        if (declaredType is not null && declaredType != sniffed && !(declaredType == "image/jpg" && sniffed == "image/jpeg"))
        {
            return (null, $"{name} says {declaredType} but holds {sniffed}.");
        }

        return (new HomeworkImage(BinaryData.FromBytes(bytes.AsMemory(0, written)), sniffed, null), null);
    }

    private static string? Sniff(ReadOnlySpan<byte> bytes)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return "image/png";
        }

        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]))
        {
            return "image/jpeg";
        }

        if (bytes.StartsWith("GIF87a"u8) || bytes.StartsWith("GIF89a"u8))
        {
            return "image/gif";
        }

        if (bytes.Length >= 12 && bytes.StartsWith("RIFF"u8) && bytes[8..12].SequenceEqual("WEBP"u8))
        {
            return "image/webp";
        }

        return null;
    }
}
