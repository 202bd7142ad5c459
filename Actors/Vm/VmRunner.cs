using ActorVm.Actors.Lapic;
using ActorVm.Hardware;
using Akka.Actor;
using Akka.Configuration;

namespace ActorVm.Actors.Vm;

/// <summary>The host's entry point: build a machine, run it under the actor system, return the result.</summary>
public static class VmRunner
{
    /// <summary>
    /// The dispatchers vCPU actors use: one thread per host core and throughput 1 (a slice per
    /// turn, so many vCPUs share few cores) on a <see cref="VcpuExecutor"/>, whose idle threads
    /// sleep in the kernel so a wake-up posted by a running slice starts on the idle core at once
    /// (Akka's ForkJoin pool left it to the spinning slice's thread); or one pinned thread each.
    /// </summary>
    public static Config DispatcherConfig { get; } = ConfigurationFactory.ParseString($$"""
        actorvm.vcpu-dispatcher {
          type = Dispatcher
          throughput = 1
          executor = "{{typeof(VcpuExecutorConfigurator).AssemblyQualifiedName}}"
          vcpu-executor {
            thread-count = {{Math.Max(1, Environment.ProcessorCount)}}
          }
        }
        actorvm.vcpu-pinned-dispatcher {
          type = PinnedDispatcher
        }
        """);

    private static Config SystemConfig { get; } = ConfigurationFactory.ParseString("""
        akka {
          loggers = ["Akka.Logger.Serilog.SerilogLogger, Akka.Logger.Serilog"]
          loglevel = WARNING
          stdout-loglevel = WARNING
          log-dead-letters = off
          log-dead-letters-during-shutdown = off
        }
        """).WithFallback(DispatcherConfig);

    /// <summary>Builds a bare machine from <paramref name="options"/> (devices come from <see cref="VmOptions.Load"/>) and runs it.</summary>
    public static async Task<VmResult> RunAsync(VmOptions options, CancellationToken cancellationToken = default)
    {
        using var machine = new Machine(new MachineConfig(options.Vcpus, options.MemoryMiB, options.TscHz), options.Clock);
        return await RunAsync(machine, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a machine someone else built and loaded (e.g. <see cref="Machine.CreatePc"/> plus the
    /// Multiboot loader); <see cref="VmOptions.Vcpus"/>/<see cref="VmOptions.MemoryMiB"/>/clock are
    /// the machine's. Its debug-exit device, if any, ends the VM. The machine is not disposed.
    /// </summary>
    public static async Task<VmResult> RunAsync(Machine machine, VmOptions options, CancellationToken cancellationToken = default)
    {
        var result = new TaskCompletionSource<VmResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var control = new VmControl();
        if (machine.DebugExit is { } debugExit)
        {
            control.ShutdownOn(debugExit);
        }

        if (machine.Platform is { } platform)
        {
            platform.SystemControl.ResetRequested += r => control.Stop(VmExitKind.Reset, 0, $"reset by the guest ({r}); not rebooting");
        }

        options.Load?.Invoke(machine, control);

        using var timer = new HostTimer(machine.Clock);
        var system = ActorSystem.Create("actorvm", SystemConfig);
        try
        {
            var vm = system.ActorOf(VmActor.Props(machine, options, result, timer, control.Bind), "vm");
            control.Attach(vm);
            vm.Tell(VmProtocol.StartVm.Instance);
            options.Started?.Invoke(new VmHandle(vm));

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.Timeout);
            await using (timeout.Token.Register(() => vm.Tell(cancellationToken.IsCancellationRequested
                ? new VmProtocol.StopVm(VmExitKind.Cancelled, 130, "cancelled")
                : new VmProtocol.StopVm(VmExitKind.Timeout, 124, $"timeout after {options.Timeout}"))))
            {
                return await result.Task.ConfigureAwait(false);
            }
        }
        finally
        {
            // Terminate waits for running slices (bounded by the instruction budget) before the
            // machine's memory can be released.
            await system.Terminate().WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        }
    }

    private sealed class VmControl : IVmControl
    {
        private IActorRef? _vm;
        private VmProtocol.StopVm? _early;
        private IReadOnlyList<Vcpu.VcpuContext>? _vcpus;

        /// <summary>The vCPUs to stop at once when a device ends the VM.</summary>
        public void Bind(IReadOnlyList<Vcpu.VcpuContext> vcpus) => Volatile.Write(ref _vcpus, vcpus);

        public void Attach(IActorRef vm)
        {
            _vm = vm;
            if (_early is { } e)
            {
                vm.Tell(e);
            }
        }

        public void Shutdown(int exitCode, string reason) => Stop(VmExitKind.Shutdown, exitCode, reason);

        public void Stop(VmExitKind kind, int exitCode, string reason)
        {
            var stop = new VmProtocol.StopVm(kind, exitCode, reason);
            if (_vm is null)
            {
                _early ??= stop;
                return;
            }

            // A device ends the VM from the thread of the vCPU that wrote it (its run loop, handling
            // the OUT): VM_DEAD and a kick now, so that vCPU stops before its next instruction and
            // the others at their next block boundary, as QEMU stops its vCPUs at once; the VM
            // actor's turn, which decides the result, may come after the run loop's next entry.
            if (Volatile.Read(ref _vcpus) is { } vcpus)
            {
                foreach (var v in vcpus)
                {
                    v.Shared.MakeRequest(Vcpu.KvmRequest.VmDead);
                    v.Shared.Kick();
                }
            }

            _vm.Tell(stop);
        }
    }
}
