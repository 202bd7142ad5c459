using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Exits;

/// <summary>
/// Handles CPUID (exit 10, KVM's kvm_emulate_cpuid): computes the leaf named by EAX/ECX and
/// completes the instruction, which writes EAX, EBX, ECX, EDX and retires.
/// </summary>
public static class CpuidExit
{
    /// <summary>Completes the pending CPUID; returns the next exit if the replay ran into one, else null.</summary>
    public static VmExit? Handle(Cpu cpu)
    {
        var r = Cpuid.Query(cpu, (uint)cpu.Gpr[Cpu.RAX], (uint)cpu.Gpr[Cpu.RCX]);
        return cpu.Complete(r.Eax, r.Ebx, r.Ecx, r.Edx);
    }
}
