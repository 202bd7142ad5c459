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

    /// <summary>KVM_HC_SEND_IPI (Documentation/virt/kvm/x86/hypercalls.rst): the one hypercall offered (CPUID 0x40000001 KVM_FEATURE_PV_SEND_IPI).</summary>
    private const ulong KvmHcSendIpi = 10;

    /// <summary>-KVM_EINVAL.</summary>
    private const ulong KvmEinval = unchecked((ulong)-22L);

    /// <summary>
    /// kvm_emulate_hypercall, a slowpath exit: KVM_HC_SEND_IPI is carried out (kvm_pv_send_ipi),
    /// any other number returns RAX = -KVM_ENOSYS. Arguments in RBX, RCX, RDX, RSI, truncated to
    /// 32 bits outside 64-bit mode, as KVM does for a 32-bit caller.
    /// </summary>
    private int Vmcall()
    {
        var op64 = Cpu.Is64BitMode;
        ulong Arg(int reg) => op64 ? Cpu.Gpr[reg] : (uint)Cpu.Gpr[reg];
        var result = Arg(Cpu.RAX) == KvmHcSendIpi && _ctx.Cpu.Model.PvSendIpi
            ? PvSendIpi(Arg(Cpu.RBX), Arg(Cpu.RCX), Arg(Cpu.RDX), Arg(Cpu.RSI), op64)
            : KvmEnosys;

        // The replayed VMCALL retires with the result in RAX.
        return Then(Cpu.Complete(result));
    }

    /// <summary>
    /// kvm_pv_send_ipi: bit i of the bitmap (low, then high) targets APIC ID min + i; the ICR's
    /// vector, delivery mode and level go to each target in physical mode. A shorthand or a
    /// logical destination in the ICR is -KVM_EINVAL. Returns how many targets exist.
    /// </summary>
    private ulong PvSendIpi(ulong low, ulong high, ulong min, ulong icr, bool op64)
    {
        if ((icr & ((1UL << 11) | (3UL << 18))) != 0)
        {
            return KvmEinval;
        }

        var clusterBits = op64 ? 64 : 32;
        var delivered = 0UL;
        for (var i = 0; i < 2 * clusterBits; i++)
        {
            var bitmap = i < clusterBits ? low : high;
            if ((bitmap >> (i % clusterBits) & 1) == 0)
            {
                continue;
            }

            var id = min + (ulong)i;
            if (id >= (ulong)_ctx.Machine.Cpus.Count)
            {
                continue;
            }

            delivered++;
            SendIpi(new InterruptMessage(
                Vector: (byte)icr,
                Mode: (DeliveryMode)((icr >> 8) & 7),
                Logical: false,
                Level: (icr & (1UL << 15)) != 0,
                Assert: (icr & (1UL << 14)) != 0,
                Shorthand: Shorthand.None,
                Destination: (uint)id,
                SourceVcpu: _ctx.Id,
                X2ApicFormat: true));
        }

        return delivered;
    }

    /// <summary>kvm_irq_delivery_to_apic from the hypercall: straight onto the APIC bus, as the ICR paths do, so IPIs keep the guest's order.</summary>
    private void SendIpi(in InterruptMessage m)
    {
        if (_ctx.Bus is { } bus)
        {
            bus.Send(m, skip: -1);
        }
        else
        {
            _vm.Tell(new Vm.VmProtocol.SendIpi(m));
        }
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

        return AskLapic(new LapicProtocol.WriteMsr(index, exit.Value), reply =>
        {
            if (reply.Fault)
            {
                Resume(FailMsr());
                return;
            }

            if (index == Hardware.X86.Msr.ApicBase && Cpu.ApicBase != reply.Value)
            {
                // kvm_lapic_set_base: the Cpu decodes the xAPIC page (Cpu.IsApicPage) and
                // CPUID.1:EDX.APIC from its own copy of IA32_APIC_BASE. The page moved or
                // appeared/disappeared, so cached translations that bypass it are stale.
                Cpu.ApicBase = reply.Value;
                Cpu.FlushTlb();
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
