namespace TokenMeter.Pricing;

/// <summary>Built-in OpenAI list prices: US dollars per million tokens, or per image, minute or million characters where the API bills so.</summary>
internal static class DefaultPrices
{
    public static IReadOnlyList<ModelPrice> All { get; } = Build();

    private static List<ModelPrice> Build()
    {
        var standard = new List<ModelPrice>
        {
            Text("gpt-4o", 2024, 8, 6, 2.50m, 1.25m, 10.00m),
            Text("gpt-4o-mini", 2024, 7, 18, 0.15m, 0.075m, 0.60m),
            Text("gpt-4.1", 2025, 4, 14, 2.00m, 0.50m, 8.00m),
            Text("gpt-4.1-mini", 2025, 4, 14, 0.40m, 0.10m, 1.60m),
            Text("gpt-4.1-nano", 2025, 4, 14, 0.10m, 0.025m, 0.40m),
            Text("o3", 2025, 4, 16, 10.00m, 2.50m, 40.00m),
            Text("o3", 2025, 6, 10, 2.00m, 0.50m, 8.00m),
            Text("o4-mini", 2025, 4, 16, 1.10m, 0.275m, 4.40m),
            Text("gpt-5", 2025, 8, 7, 1.25m, 0.125m, 10.00m),
            Text("gpt-5-mini", 2025, 8, 7, 0.25m, 0.025m, 2.00m),
            Text("gpt-5-nano", 2025, 8, 7, 0.05m, 0.005m, 0.40m),
            Text("text-embedding-3-small", 2024, 1, 25, 0.02m, null, 0m),
            Text("text-embedding-3-large", 2024, 1, 25, 0.13m, null, 0m),
            Text("text-embedding-ada-002", 2022, 12, 15, 0.10m, null, 0m),

            // Audio: text tokens at the text prices, audio tokens at the audio prices.
            Text("gpt-4o-transcribe", 2025, 3, 20, 2.50m, null, 10.00m) with { AudioInputPerMillion = 6.00m },
            Text("gpt-4o-mini-transcribe", 2025, 3, 20, 1.25m, null, 5.00m) with { AudioInputPerMillion = 3.00m },
        };

        var prices = new List<ModelPrice>(standard);

        // The Batch API costs half of standard, for every dated standard price.
        prices.AddRange(standard.Select(p => p with
        {
            Tier = PriceTier.Batch,
            InputPerMillion = p.InputPerMillion / 2,
            CachedInputPerMillion = p.CachedInputPerMillion / 2,
            OutputPerMillion = p.OutputPerMillion / 2,
            AudioInputPerMillion = p.AudioInputPerMillion / 2,
            AudioOutputPerMillion = p.AudioOutputPerMillion / 2,
        }));

        prices.AddRange(
        [
            Tiered("o3", PriceTier.Flex, 2025, 6, 10, 1.00m, 0.25m, 4.00m),
            Tiered("o4-mini", PriceTier.Flex, 2025, 4, 16, 0.55m, 0.1375m, 2.20m),
            Tiered("gpt-5", PriceTier.Flex, 2025, 8, 7, 0.625m, 0.0625m, 5.00m),
            Tiered("gpt-5-mini", PriceTier.Flex, 2025, 8, 7, 0.125m, 0.0125m, 1.00m),

            Tiered("gpt-4o", PriceTier.Priority, 2024, 8, 6, 4.25m, 2.125m, 17.00m),
            Tiered("gpt-4o-mini", PriceTier.Priority, 2024, 7, 18, 0.25m, 0.125m, 1.00m),
            Tiered("gpt-4.1", PriceTier.Priority, 2025, 4, 14, 3.50m, 0.875m, 14.00m),
            Tiered("o3", PriceTier.Priority, 2025, 6, 10, 3.50m, 0.875m, 14.00m),
            Tiered("o4-mini", PriceTier.Priority, 2025, 4, 16, 2.00m, 0.50m, 8.00m),
            Tiered("gpt-5", PriceTier.Priority, 2025, 8, 7, 2.50m, 0.25m, 20.00m),
            Tiered("gpt-5-mini", PriceTier.Priority, 2025, 8, 7, 0.45m, 0.045m, 3.60m),
        ]);

        prices.AddRange(
        [
            // Images: gpt-image-1 bills text input, image input and image output tokens; DALL·E bills each image by quality and size.
            Text("gpt-image-1", 2025, 4, 23, 5.00m, 1.25m, 40.00m) with { ImageInputPerMillion = 10.00m },
            Text("gpt-image-1-mini", 2025, 10, 6, 2.00m, 0.20m, 8.00m) with { ImageInputPerMillion = 2.50m },
            PerImage("dall-e-2", ("256x256", 0.016m), ("512x512", 0.018m), ("1024x1024", 0.020m)),
            PerImage(
                "dall-e-3",
                ("standard/1024x1024", 0.040m),
                ("standard/1024x1792", 0.080m),
                ("standard/1792x1024", 0.080m),
                ("hd/1024x1024", 0.080m),
                ("hd/1024x1792", 0.120m),
                ("hd/1792x1024", 0.120m)),

            // Audio billed by the minute (transcription reports its duration) or by the character (speech returns only audio).
            Text("whisper-1", 2023, 3, 1, 0m, null, 0m) with { PerMinute = 0.006m },
            Text("tts-1", 2023, 11, 6, 0m, null, 0m) with { PerMillionCharacters = 15.00m },
            Text("tts-1-hd", 2023, 11, 6, 0m, null, 0m) with { PerMillionCharacters = 30.00m },
            Text("gpt-4o-mini-tts", 2025, 3, 20, 0.60m, null, 12.00m),

            // Moderation is free: priced at zero (a known price), not unpriced.
            .. Free("omni-moderation"),
            .. Free("omni-moderation-latest"),
            .. Free("text-moderation"),
            .. Free("text-moderation-latest"),
            .. Free("text-moderation-stable"),
        ]);

        return prices;
    }

    private static ModelPrice PerImage(string model, params (string Key, decimal Price)[] prices) =>
        new(model, PriceTier.Standard, new DateOnly(2023, 11, 6), 0m, null, 0m)
        {
            PerImage = prices.ToDictionary(p => p.Key, p => p.Price, StringComparer.Ordinal),
        };

    private static IEnumerable<ModelPrice> Free(string model) =>
    [
        new(model, PriceTier.Standard, new DateOnly(2022, 8, 10), 0m, null, 0m),
        new(model, PriceTier.Batch, new DateOnly(2022, 8, 10), 0m, null, 0m),
    ];

    private static ModelPrice Text(string model, int year, int month, int day, decimal input, decimal? cached, decimal output) =>
        new(model, PriceTier.Standard, new DateOnly(year, month, day), input, cached, output);

    private static ModelPrice Tiered(string model, PriceTier tier, int year, int month, int day, decimal input, decimal? cached, decimal output) =>
        new(model, tier, new DateOnly(year, month, day), input, cached, output);
}
