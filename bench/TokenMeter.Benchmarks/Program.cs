using BenchmarkDotNet.Running;
using TokenMeter.Benchmarks.Forecasting;
using TokenMeter.Benchmarks.Postgres;

if (args.Length > 0 && args[0] == "forecast-backtest")
{
    return ForecastBacktest.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "forecast-cpu")
{
    return ForecastCpu.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "metering-probe")
{
    return TokenMeter.Benchmarks.Metering.AllocationProbe.Run(args[1..]);
}

if (args.Length > 2 && args[0] == "metering-loop")
{
    return TokenMeter.Benchmarks.Metering.AllocationProbe.Loop(args[1..]);
}

if (args.Length > 0 && args[0] == "postgres-scale")
{
    return await ScaleBench.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "postgres-ingest")
{
    return await PostgresBench.RunIngestAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "postgres")
{
    return await PostgresBench.RunAsync(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
