using ActorVm.Actors.Lapic;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.X86;
using Akka.Actor;

namespace ActorVm.Actors.Tests.Vm;

/// <summary>A whole VM under the TestKit's actor system: VmActor with its children, real guests, recorded ports.</summary>
public sealed class VmRig
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host

    public VmRig(ActorSystem system, int vcpus, Action<Machine> load, VmOptions? options = null)
    {
        Machine = new Machine(new MachineConfig(vcpus, 4));
        Trace = new TraceSink();
        Options = (options ?? new VmOptions()) with { Vcpus = vcpus, Trace = TraceEvents.All, TraceLogger = Trace.Logger() };
        Machine.Io.Register(0x80, 8, Ports);
        load(Machine);
        Timer = new HostTimer(Machine.Clock);
        var debugExit = new DebugExit();
        Machine.Io.Register(DebugExit.DefaultPort, DebugExit.PortCount, debugExit);
        Vm = system.ActorOf(VmActor.Props(Machine, Options, Result, Timer));
        debugExit.Requested += code => Vm.Tell(new VmProtocol.StopVm(VmExitKind.Shutdown, code, "debug-exit"));
    }

    public Machine Machine { get; }

    public VmOptions Options { get; }

    public TraceSink Trace { get; }

    public HostTimer Timer { get; }

    public RecordingPorts Ports { get; } = new();

    public IActorRef Vm { get; }

    public TaskCompletionSource<VmResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public VmRig Start()
    {
        Vm.Tell(VmProtocol.StartVm.Instance);
        return this;
    }

    public VmResult Await()
    {
        Assert.True(Result.Task.Wait(Bound), "the VM did not finish in time");
        return Result.Task.Result;
    }

    public Stats.VcpuStatistics Stats(int vcpu = 0) => Vm.Ask<Stats.VmStatistics>(VmProtocol.GetStatistics.Instance, Bound).Result.PerVcpu[vcpu];

    public ActorVm.Actors.Vcpu.VcpuShared[] Shared() => Vm.Ask<ActorVm.Actors.Vcpu.VcpuShared[]>(VmProtocol.GetVcpuShared.Instance, Bound).Result;

    public void Pause() => Assert.IsType<VmProtocol.VmPaused>(Vm.Ask(VmProtocol.PauseVm.Instance, Bound).Result);

    public void WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {what}");
            Thread.Sleep(2);
        }
    }

    /// <summary>An interrupt from outside the CPUs (IOAPIC/MSI-like: source -1) to APIC ID <paramref name="dest"/>.</summary>
    public void Interrupt(DeliveryMode mode, byte vector, uint dest = 0) =>
        Vm.Tell(new VmProtocol.SendIpi(new InterruptMessage(vector, mode, Logical: false, Level: false, Assert: true, Shorthand.None, dest, SourceVcpu: -1, X2ApicFormat: true)));
}
