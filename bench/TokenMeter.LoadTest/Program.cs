using TokenMeter.LoadTest;

return await Commands.RunAsync(args).ConfigureAwait(false);
