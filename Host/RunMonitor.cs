using System.Diagnostics;
using ActorVm.Actors.Vm;
using ActorVm.Host.Display;
using Serilog;

namespace ActorVm.Host;

/// <summary>
/// Watches a running VM from outside the actor system a few times a second and feeds the
/// progress display (the guest-instruction limit is the run loop's own, VmOptions.MaxInstructions).
/// </summary>
public sealed class RunMonitor(ProgressDisplay? progress) : IDisposable
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(200);
    private static ILogger Logger => Log.ForContext<RunMonitor>();

    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _elapsed = new();
    private Task? _loop;
    private bool _disposed;

    /// <summary>Called by the VM runner once the VM actor exists (<see cref="VmOptions.Started"/>).</summary>
    public void Attach(VmHandle vm)
    {
        if (progress is not { } display)
        {
            return;
        }

        _elapsed.Start();
        display.Start();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(Period, _stop.Token).ConfigureAwait(false);
                    var stats = await vm.StatisticsAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                    display.Update(stats, _elapsed.Elapsed);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
                {
                    Logger.Debug("statistics not available: {Error}", e.Message);
                }
            }
        });
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stop.Cancel();
        try
        {
            _loop?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }

        progress?.Stop();
        _stop.Dispose();
    }
}
