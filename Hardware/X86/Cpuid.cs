using System.Text;
using Iced.Intel;

namespace ActorVm.Hardware.X86;

/// <summary>The four registers CPUID returns.</summary>
public readonly record struct CpuidResult(uint Eax, uint Ebx, uint Ecx, uint Edx);

/// <summary>
/// CPUID leaves computed from the <see cref="CpuModel"/> and the processor's live state (SDM
/// vol. 2 CPUID). Instruction feature bits are reported only when the interpreter implements the
/// instruction (<see cref="Implemented"/>): advertising e.g. POPCNT while it raises #UD would
/// break kernels that trust CPUID. Unknown leaves behave like Intel: data of the highest basic leaf.
/// </summary>
public static class Cpuid
{
    public const uint MaxBasicLeaf = 0x15;
    public const uint MaxHypervisorLeaf = 0x40000001;
    public const uint MaxExtendedLeaf = 0x80000008;

    /// <summary>KVM_FEATURE_PV_SEND_IPI (bit 11 of CPUID 0x40000001 EAX).</summary>
    public const int KvmFeaturePvSendIpi = 11;

    private const string BrandString = "ActorVm Virtual CPU @ interpreter";

    /// <summary>Whether the interpreter has a handler for an instruction form (the feature switch for ISA bits).</summary>
    public static bool Implemented(Code code) => InstructionTable.IsImplemented(code);

    /// <summary>CPUID with EAX = <paramref name="leaf"/>, ECX = <paramref name="subleaf"/> on <paramref name="cpu"/>.</summary>
    public static CpuidResult Query(Cpu cpu, uint leaf, uint subleaf)
    {
        var m = cpu.Model;
        if (leaf > MaxBasicLeaf && leaf < 0x40000000
            || leaf is >= 0x40000000 and < 0x80000000 && (!m.Hypervisor || leaf > MaxHypervisorLeaf)
            || leaf > MaxExtendedLeaf)
        {
            // Intel: a leaf above its range's maximum returns the highest basic leaf's data.
            leaf = MaxBasicLeaf;
        }

        switch (leaf)
        {
            case 0:
                return new CpuidResult(MaxBasicLeaf, Ascii("Genu"), Ascii("ntel"), Ascii("ineI"));
            case 1:
                return Leaf1(cpu);
            case 2:
                // One descriptor byte 0xFF: "use leaf 4", which reports no caches.
                return new CpuidResult(0x00FF0001, 0, 0, 0);
            case 7:
                // Structured extended features, subleaf 0 only: IA32_TSC_ADJUST (EBX bit 1).
                return subleaf == 0 ? new CpuidResult(0, 1u << 1, 0, 0) : default;
            case 0xB:
                return Leaf0B(cpu, subleaf);
            case 0x15:
            {
                // TSC/crystal ratio 1:1 with the crystal at the TSC frequency (EAX denominator, EBX numerator).
                var hz = m.TscHz <= uint.MaxValue ? (uint)m.TscHz : 0;
                return hz == 0 ? default : new CpuidResult(1, 1, hz, 0);
            }

            case 0x40000000:
                return new CpuidResult(MaxHypervisorLeaf, Ascii("KVMK"), Ascii("VMKV"), Ascii("M\0\0\0"));
            case 0x40000001:
                return new CpuidResult(m.PvSendIpi ? 1u << KvmFeaturePvSendIpi : 0, 0, 0, 0);
            case 0x80000000:
                return new CpuidResult(MaxExtendedLeaf, 0, 0, 0);
            case 0x80000001:
                return Leaf80000001(m);
            case 0x80000002 or 0x80000003 or 0x80000004:
                return Brand((int)(leaf - 0x80000002));
            case 0x80000007:
                // Invariant TSC: the VM clock never stops or changes rate.
                return new CpuidResult(0, 0, 0, 1u << 8);
            case 0x80000008:
                return new CpuidResult((uint)m.PhysicalAddressBits | (48u << 8), 0, 0, 0);
            default:
                // Leaves in range that describe nothing we have (caches, PMU 0xA, XSAVE 0xD, ...): zeros.
                return default;
        }
    }

    private static CpuidResult Leaf1(Cpu cpu)
    {
        var m = cpu.Model;
        var apicId = (uint)cpu.Id & 0xFF;
        // CLFLUSH line size 8 × 8 = 64 bytes, logical processor count, initial APIC ID.
        var ebx = (8u << 8) | ((uint)Math.Clamp(m.LogicalProcessors, 1, 255) << 16) | (apicId << 24);

        uint ecx = 0;
        if (Implemented(Code.Cmpxchg16b_m128)) ecx |= 1u << 13;
        if (m.X2Apic) ecx |= 1u << 21;
        if (m.Movbe && Implemented(Code.Movbe_r32_m32)) ecx |= 1u << 22;
        if (Implemented(Code.Popcnt_r32_rm32)) ecx |= 1u << 23;
        if (m.TscDeadline) ecx |= 1u << 24;
        if (m.Hypervisor) ecx |= 1u << 31;

        // FPU (control state; arithmetic raises #UD), TSC, MSR, PAE, PSE, PGE, PAT, MTRR (storage).
        uint edx = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 12) | (1u << 13) | (1u << 16);
        if (Implemented(Code.Cmpxchg8b_m64)) edx |= 1u << 8;
        if ((cpu.ApicBase & MsrApicBase.Enable) != 0) edx |= 1u << 9; // tracks IA32_APIC_BASE.EN (SDM 11.4.3)
        if (Implemented(Code.Sysenter) && Implemented(Code.Sysexitd)) edx |= 1u << 11;
        if (Implemented(Code.Cmovo_r32_rm32)) edx |= 1u << 15;
        if (Implemented(Code.Clflush_m8)) edx |= 1u << 19;
        if (Implemented(Code.Emms) && Implemented(Code.Movq_mm_mmm64)) edx |= 1u << 23;
        if (Implemented(Code.Fxsave_m512byte)) edx |= 1u << 24;
        if (Implemented(Code.Movaps_xmm_xmmm128) && Implemented(Code.Ldmxcsr_m32)) edx |= 1u << 25;
        if (Implemented(Code.Movdqa_xmm_xmmm128)) edx |= 1u << 26;
        return new CpuidResult(m.Signature, ebx, ecx, edx);
    }

    /// <summary>x2APIC topology (SDM CPUID.0BH): level 0 SMT (one thread per core), level 1 core; EDX = x2APIC ID.</summary>
    private static CpuidResult Leaf0B(Cpu cpu, uint subleaf)
    {
        var id = (uint)cpu.Id;
        return subleaf switch
        {
            0 => new CpuidResult(0, 1, (1u << 8) | subleaf, id),
            1 => new CpuidResult(8, (uint)Math.Max(cpu.Model.LogicalProcessors, 1), (2u << 8) | subleaf, id),
            _ => new CpuidResult(0, 0, subleaf & 0xFF, id),
        };
    }

    private static CpuidResult Leaf80000001(CpuModel m)
    {
        uint ecx = 0;
        if (Implemented(Code.Lahf) && Implemented(Code.Sahf)) ecx |= 1;
        if (Implemented(Code.Lzcnt_r32_rm32)) ecx |= 1u << 5;
        uint edx = 1u << 29; // LM
        if (Implemented(Code.Syscall) && Implemented(Code.Sysretq)) edx |= 1u << 11;
        if (m.Nx) edx |= 1u << 20;
        if (m.Has1GPages) edx |= 1u << 26;
        if (Implemented(Code.Rdtscp)) edx |= 1u << 27;
        return new CpuidResult(0, 0, ecx, edx);
    }

    private static CpuidResult Brand(int part)
    {
        var bytes = new byte[48];
        Encoding.ASCII.GetBytes(BrandString).CopyTo(bytes, 0);
        uint R(int i) => BitConverter.ToUInt32(bytes, (part * 16) + (i * 4));
        return new CpuidResult(R(0), R(1), R(2), R(3));
    }

    private static uint Ascii(string four) => BitConverter.ToUInt32(Encoding.ASCII.GetBytes(four));
}
