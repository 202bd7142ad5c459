using ActorVm.Actors.Lapic;
using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.Exits;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.Event;

namespace ActorVm.Actors.RunLoop;

/// <summary>
/// The slowpath exit handlers: one table indexed by basic exit reason, like KVM's
/// kvm_vmx_exit_handlers. A reason without an entry ends the VM (unexpected_vmexit).
/// Each handler returns 1 (go on), 0 (stop) or Suspended (a LAPIC reply will finish it).
/// </summary>
public sealed partial class RunLoopActor
{
    /// <summary>-KVM_ENOSYS, what KVM returns in RAX for an unknown hypercall.</summary>
    private const ulong KvmEnosys = unchecked((ulong)-1000L);

    private void RegisterHandlers()
    {
        _handlers[(int)ExitReason.ExternalInterrupt] = _ => 1; // the kick / self-IPI was consumed at E11
        _handlers[(int)ExitReason.TripleFault] = _ => TripleFault();
        _handlers[(int)ExitReason.InterruptWindow] = _ => InterruptWindow();
        _handlers[(int)ExitReason.NmiWindow] = _ => NmiWindow();
        _handlers[(int)ExitReason.Hlt] = _ => Halt();
        _handlers[(int)ExitReason.Vmcall] = _ => Vmcall();
        _handlers[(int)ExitReason.IoInstruction] = Io;
        _handlers[(int)ExitReason.MsrRead] = Msr;
        _handlers[(int)ExitReason.MsrWrite] = Msr;
        _handlers[(int)ExitReason.Cpuid] = _ => Then(CpuidExit.Handle(Cpu));
        _handlers[(int)ExitReason.ApicAccess] = ApicAccess;
        _handlers[(int)ExitReason.EptViolation] = UnclaimedMmio;
        _handlers[(int)ExitReason.PreemptionTimer] = _ => PreemptionTimer();
    }

    private int TripleFault()
    {
        Shutdown(Vm.VmExitKind.TripleFault, $"vCPU {_ctx.Id}: triple fault at rip 0x{Cpu.Rip:x}");
        return 0;
    }

    /// <summary>handle_interrupt_window: clear the control, re-evaluate injection.</summary>
    private int InterruptWindow()
    {
        _irqWindow = false;
        Shared.MakeRequest(KvmRequest.Event);
        return 1;
    }

    private int NmiWindow()
    {
        _nmiWindow = false;
        Shared.MakeRequest(KvmRequest.Event);
        return 1;
    }

    /// <summary>kvm_emulate_halt: retire HLT; mp_state becomes HALTED and vcpu_run blocks.</summary>
    private int Halt()
    {
        var r = Then(Cpu.Complete());
        NoteHalt();
        return r;
    }

    /// <summary>kvm_emulate_hypercall: no hypercalls are implemented, RAX = -KVM_ENOSYS.</summary>
    private int Vmcall()
    {
        var r = Then(Cpu.Complete());
        Cpu.Gpr[Cpu.RAX] = KvmEnosys;
        return r;
    }

    /// <summary>handle_io: the port bus, synchronously on this thread (devices are not actors).</summary>
    private int Io(VmExit exit) => Then(PortIoExit.Handle(Cpu, _ctx.Machine.Io, exit));

    /// <summary>handle_rdmsr / handle_wrmsr: core MSRs through the system branch's MsrExit; APIC MSRs ask the LAPIC.</summary>
    private int Msr(VmExit exit)
    {
        switch (MsrExit.Handle(Cpu, exit, out var next))
        {
            case MsrExitResult.Completed:
                return Then(next);
            case MsrExitResult.Fault:
                QueueException(MsrExit.GeneralProtection);
                return 1;
        }

        var index = MsrExit.Index(exit);
        if (exit.Reason == ExitReason.MsrRead)
        {
            return AskLapic(new LapicProtocol.ReadMsr(index), reply =>
                Resume(reply.Fault ? FailMsr() : Then(MsrExit.CompleteRead(Cpu, reply.Value))));
        }

        var value = exit.Value;
        return AskLapic(new LapicProtocol.WriteMsr(index, value), reply =>
        {
            if (reply.Fault)
            {
                Resume(FailMsr());
                return;
            }

            if (index == Hardware.X86.Msr.ApicBase)
            {
                // The Cpu decodes the xAPIC page from its own copy of IA32_APIC_BASE.
                Cpu.ApicBase = value;
            }

            Resume(Then(MsrExit.CompleteWrite(Cpu)));
        });
    }

    private int FailMsr()
    {
        QueueException(MsrExit.Fail(Cpu));
        return 1;
    }

    /// <summary>handle_apic_access: emulate the access against the LAPIC; the read value completes the instruction.</summary>
    private int ApicAccess(VmExit exit)
    {
        var offset = (uint)(exit.Qualification & 0xFFF);
        object request = exit.IsWrite
            ? new LapicProtocol.WriteMmio(offset, exit.Size, exit.Value)
            : new LapicProtocol.ReadMmio(offset, exit.Size);
        return AskLapic(request, reply => Resume(Then(Cpu.Complete(reply.Value))));
    }

    /// <summary>MMIO no device claims (EPT_VIOLATION on an unbacked GPA): the platform's UnclaimedMmioExit (all ones / dropped).</summary>
    private int UnclaimedMmio(VmExit exit) => Then(UnclaimedMmioExit.Handle(Cpu, exit));

    /// <summary>handle_preemption_timer: legal only with L2 active; otherwise a counted WARN (I8).</summary>
    private int PreemptionTimer()
    {
        if (!Shared.L2Active)
        {
            Counters.Add(ref Counters.WarnSlowpathPreemptionTimer);
            _log.Warning("vCPU {0}: slowpath PREEMPTION_TIMER exit outside L2 (WARN_ON_ONCE in handle_preemption_timer)", _ctx.Id);
        }

        _lapic.Tell(new LapicProtocol.HvTimerExpired(Shared.HvDeadline));
        return 1;
    }
}
