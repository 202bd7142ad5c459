using ActorVm.Actors.RunLoop;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Stress;

/// <summary>
/// I12 (HLT with IF=0 ignores fixed IRQs) and I14 (INIT/SIPI rules) from the exit, injection
/// and INIT/SIPI hooks.
/// </summary>
public sealed partial class InvariantChecker
{
    public void ApicEventPosted(int vcpu, bool init, bool sipiWasPending)
    {
        Record(vcpu, init ? "post-init" : "post-sipi", sipiWasPending ? 1 : 0, 0);
        if (init && sipiWasPending)
        {
            Interlocked.Increment(ref _sipisOverridden);
        }

        // I14: INIT replaces the pending events (pending_events = {INIT}), so a SIPI posted before
        // it is gone. Only this vCPU's LAPIC actor, which is calling us, posts SIPIs, and the run
        // loop only clears them: a SIPI bit seen now survived the INIT.
        if (init && (_vcpus[vcpu].Shared.ApicEvents & VcpuShared.ApicSipi) != 0)
        {
            Report("I14", vcpu, "INIT posted while a SIPI stays pending: INIT must override it");
        }
    }

    public void ApicEventsAccepted(int vcpu, in ApicEventsTaken taken)
    {
        var t = Record(vcpu, "accept-events", taken.Events, (long)taken.After);
        var init = (taken.Events & VcpuShared.ApicInit) != 0;
        var sipi = (taken.Events & VcpuShared.ApicSipi) != 0;
        if (init || sipi)
        {
            // kvm_vcpu_has_events counts pending INIT/SIPI, and vcpu_block then makes HALTED
            // RUNNABLE (spec §4), even when the SIPI itself is dropped.
            t.HaltWokenBy = init ? "INIT" : "SIPI";
        }

        var cpu = _vcpus[vcpu].Cpu;
        var bsp = vcpu == 0;
        string? wrong = null;
        if (init)
        {
            Interlocked.Increment(ref _inits);
        }

        if (sipi)
        {
            Interlocked.Increment(ref taken.After == MpState.Runnable && (init || taken.Before == MpState.InitReceived) && !bsp ? ref _sipiStarts : ref _sipisDropped);
        }

        if (init)
        {
            // INIT resets: BSP → RUNNABLE, AP → INIT_RECEIVED; a SIPI taken with it starts the AP.
            var expected = bsp || sipi ? MpState.Runnable : MpState.InitReceived;
            if (taken.After != expected)
            {
                wrong = $"INIT{(sipi ? "+SIPI" : "")} left mp_state {taken.After}, expected {expected}";
            }
            else if (sipi && !bsp && !StartedAt(cpu, taken.SipiVector))
            {
                wrong = $"INIT+SIPI did not start the AP at 0x{taken.SipiVector << 8:x}:0 (CS 0x{cpu.Seg[(int)SegReg.CS].Selector:x}, RIP 0x{cpu.Rip:x})";
            }
        }
        else if (sipi && taken.Before == MpState.InitReceived)
        {
            if (taken.After != MpState.Runnable || !StartedAt(cpu, taken.SipiVector))
            {
                wrong = $"SIPI in INIT_RECEIVED left mp_state {taken.After}, CS 0x{cpu.Seg[(int)SegReg.CS].Selector:x}, RIP 0x{cpu.Rip:x}";
            }
        }
        else if (sipi && (taken.After != taken.Before || cpu.Seg[(int)SegReg.CS].Selector != taken.CsBefore || cpu.Rip != taken.RipBefore))
        {
            // I14: SIPI while not waiting for one (RUNNABLE, HALTED) is dropped.
            wrong = $"SIPI in {taken.Before} was not dropped: mp_state {taken.After}, CS:IP 0x{taken.CsBefore:x}:0x{taken.RipBefore:x} → 0x{cpu.Seg[(int)SegReg.CS].Selector:x}:0x{cpu.Rip:x}";
        }

        if (wrong is not null)
        {
            Report("I14", vcpu, wrong);
        }

        t.WaitingForSipi = taken.After == MpState.InitReceived;
    }

    private static bool StartedAt(Cpu cpu, byte vector) =>
        cpu.Seg[(int)SegReg.CS].Selector == vector << 8 && cpu.Rip == 0;

    /// <summary>
    /// At an exit: a retired HLT with IF=0 may only be left for an NMI, INIT, SIPI (or SMI), one
    /// event per HLT. A HLT the fastpath ended (REENTER_GUEST, <c>Halted</c> already cleared) counts
    /// too: the vendor layer delivers nothing, so the event must be accepted or injected by the
    /// run loop before the next entry, and a re-entry straight from E10 finds no wake-up at all.
    /// </summary>
    private void NoteHalt(int vcpu, Track t, in VmExit exit, FastpathResult fastpath)
    {
        var cpu = _vcpus[vcpu].Cpu;
        var haltRetired = cpu.Halted || (exit.Reason == ExitReason.Hlt && fastpath == FastpathResult.ReenterGuest);
        if (haltRetired && !cpu.IF)
        {
            t.HaltedIfClear = true;
            t.HaltWokenBy = null;
        }
    }

    /// <summary>I12 and I14 at an entry.</summary>
    private void CheckEntryAfterHalt(int vcpu, Track t)
    {
        if (t.WaitingForSipi)
        {
            Report("I14", vcpu, "the AP entered the guest in INIT_RECEIVED, with no SIPI since the INIT");
        }

        if (t.HaltedIfClear)
        {
            t.HaltedIfClear = false;
            Interlocked.Increment(ref _haltsIfClear);
            if (t.HaltWokenBy is null)
            {
                var shared = _vcpus[vcpu].Shared;
                Report("I12", vcpu, $"left HLT with IF=0 with no NMI, INIT, SIPI or SMI (deliverable IRQ {Vector(shared.HighestDeliverable)}, requests 0x{shared.Requests:x})");
            }
        }
    }
}
