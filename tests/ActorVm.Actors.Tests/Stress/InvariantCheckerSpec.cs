using ActorVm.Actors.Logging;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Stress;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Tests.Stress;

/// <summary>The checker on hand-made event sequences: each rule fires on its violation and stays quiet otherwise.</summary>
public sealed class InvariantCheckerSpec : IDisposable
{
    private readonly Machine _machine = new(new MachineConfig(2, 1));
    private readonly VcpuContext[] _vcpus;
    private readonly InvariantChecker _checker = new(seed: 99, stallBound: TimeSpan.FromMilliseconds(60), samplePeriod: TimeSpan.FromMilliseconds(10));

    public InvariantCheckerSpec()
    {
        var options = new VmOptions { Vcpus = 2 };
        var trace = new Tracepoints(TraceEvents.None, null, _machine.Clock);
        _vcpus = [new VcpuContext(_machine, 0, options, trace), new VcpuContext(_machine, 1, options, trace)];
        _checker.Attach(_vcpus);
    }

    public void Dispose()
    {
        _checker.Dispose();
        _machine.Dispose();
    }

    [Fact(DisplayName = "Checker: a clean entry/exit/block sequence reports nothing")]
    public void CleanSequence()
    {
        var shared = _vcpus[0].Shared;
        shared.Mode.Set(ModeWord.InGuestMode);
        _checker.Entry(0, 0, ModeWord.InGuestMode, forced: false, reentry: false);
        _checker.Exit(0, new VmExit(ExitReason.Hlt, InstructionsRetired: 5), FastpathResult.None, forced: false);
        shared.Mode.Set(ModeWord.OutsideGuestMode);
        _checker.RequestServiced(0, KvmRequest.Event);
        _checker.BlockChanged(0, blocked: true);
        _checker.BlockChanged(0, blocked: false);
        Thread.Sleep(150);
        Assert.Empty(_checker.Violations);
        Assert.Equal(5, _checker.Events);
    }

    [Fact(DisplayName = "Checker: I2 for an entry whose re-check saw a request; the violation names vCPU, seed and events")]
    public void I2()
    {
        _vcpus[1].Shared.Mode.Set(ModeWord.InGuestMode);
        _checker.Entry(1, 1L << KvmRequest.Event, ModeWord.InGuestMode, forced: false, reentry: false);
        var v = Assert.Single(_checker.Violations);
        Assert.Equal(("I2", 1, 99), (v.Invariant, v.Vcpu, v.Seed));
        Assert.Contains("entry", v.Recent[^1].Kind, StringComparison.Ordinal);
    }

    [Fact(DisplayName = "Checker: I5 and I7 for a forced inner loop without EVENT that enters twice")]
    public void I5AndI7()
    {
        _vcpus[0].Shared.Mode.Set(ModeWord.InGuestMode);
        _checker.Entry(0, 0, ModeWord.InGuestMode, forced: true, reentry: true);
        Assert.Equal(["I5", "I7"], _checker.Violations.Select(v => v.Invariant));
    }

    [Fact(DisplayName = "Checker: I6 for a forced preemption-timer entry that retired instructions")]
    public void I6()
    {
        _vcpus[0].Shared.Mode.Set(ModeWord.InGuestMode);
        _checker.Exit(0, new VmExit(ExitReason.PreemptionTimer, InstructionsRetired: 3), FastpathResult.ExitHandled, forced: true);
        Assert.Equal("I6", Assert.Single(_checker.Violations).Invariant);
    }

    [Fact(DisplayName = "Checker: I8 for an unforced preemption-timer exit sent to the slowpath without L2")]
    public void I8()
    {
        _vcpus[0].Shared.Mode.Set(ModeWord.InGuestMode);
        _checker.Exit(0, new VmExit(ExitReason.PreemptionTimer), FastpathResult.None, forced: false);
        Assert.Equal("I8", Assert.Single(_checker.Violations).Invariant);
    }

    [Fact(DisplayName = "Checker: I11 for an IRQ injected with IF=0; I3 for servicing a request in guest mode")]
    public void I11AndI3()
    {
        _checker.Injected(0, new EventInjection(0x40, EventType.ExternalInterrupt), reinjected: false); // reset CPU: IF=0
        _vcpus[0].Shared.Mode.Set(ModeWord.InGuestMode);
        _checker.RequestServiced(0, KvmRequest.Event);
        Assert.Equal(["I11", "I3"], _checker.Violations.Select(v => v.Invariant));
    }

    [Fact(DisplayName = "Checker sampler: I4 for a blocked vCPU whose UNBLOCK never woke it; I1 for a request left pending in guest mode")]
    public void SamplerFindsLostWakeupAndLostRequest()
    {
        _vcpus[0].Shared.EnterBlocked();
        _vcpus[0].Shared.MakeRequest(KvmRequest.Unblock);
        _vcpus[1].Shared.Mode.Set(ModeWord.InGuestMode);
        _vcpus[1].Shared.MakeRequest(KvmRequest.Event);
        var until = DateTime.UtcNow.AddSeconds(2);
        while (_checker.Violations.Count < 2 && DateTime.UtcNow < until)
        {
            Thread.Sleep(10);
        }

        Assert.Contains(_checker.Violations, v => v is { Invariant: "I4", Vcpu: 0 });
        Assert.Contains(_checker.Violations, v => v is { Invariant: "I1", Vcpu: 1 });
    }

    [Fact(DisplayName = "Checker sampler: a request answered by a kick within the bound is not a violation")]
    public void TransientRequestIsFine()
    {
        var shared = _vcpus[1].Shared;
        shared.Mode.Set(ModeWord.InGuestMode);
        shared.MakeRequest(KvmRequest.Event);
        Thread.Sleep(25);
        shared.Kick(); // IN → EXITING: the entry is on its way out
        Thread.Sleep(150);
        Assert.Empty(_checker.Violations);
    }
}
