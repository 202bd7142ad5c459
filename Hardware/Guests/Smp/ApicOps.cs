using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// Emits local-APIC accesses for 32-bit guest code in either mode, so one program runs on xAPIC
/// (MMIO at 0xFEE00000) and x2APIC (MSR 0x800 + offset/16, SDM 11.12.1.2). Registers are named by
/// their xAPIC offsets. Clobbers are listed per method.
/// </summary>
public sealed class ApicOps(Assembler a, GuestApicMode mode)
{
    public const uint MmioBase = 0xFEE00000;
    public const uint Id = 0x20, Tpr = 0x80, Eoi = 0xB0, Svr = 0xF0, IcrLow = 0x300, IcrHigh = 0x310,
        LvtTimer = 0x320, TimerInitialCount = 0x380, TimerCurrentCount = 0x390, TimerDivide = 0x3E0;

    /// <summary>IA32_TSC_DEADLINE (SDM 11.5.4.1).</summary>
    public const uint TscDeadlineMsr = 0x6E0;

    /// <summary>ICR bits: level assert (14), shorthand self (18) and all-excluding-self (19:18 = 3).</summary>
    public const uint Assert = 1 << 14, ShorthandSelf = 1 << 18, ShorthandAllButSelf = 3 << 18, Init = 5 << 8, StartUp = 6 << 8;

    public GuestApicMode Mode { get; } = mode;

    /// <summary>x2APIC: sets IA32_APIC_BASE.EXTD (and EN); both modes: software-enable through SVR with spurious vector 0xFF. Clobbers EAX, ECX, EDX.</summary>
    public void Enable()
    {
        if (Mode == GuestApicMode.X2Apic)
        {
            a.mov(ecx, 0x1Bu);
            a.rdmsr();
            a.or(eax, 0xC00);
            a.wrmsr();
        }

        WriteConst(Svr, 0x1FF);
    }

    /// <summary>EAX = this CPU's APIC ID. Clobbers ECX, EDX.</summary>
    public void ReadId()
    {
        if (Mode == GuestApicMode.X2Apic)
        {
            Read(Id);
        }
        else
        {
            Read(Id);
            a.shr(eax, 24);
        }
    }

    /// <summary>EAX = the register. Clobbers ECX, EDX (x2APIC).</summary>
    public void Read(uint offset)
    {
        if (Mode == GuestApicMode.X2Apic)
        {
            a.mov(ecx, Msr(offset));
            a.rdmsr();
        }
        else
        {
            a.mov(eax, __dword_ptr[Mmio(offset)]);
        }
    }

    /// <summary>Writes EAX to the register. Clobbers ECX, EDX (x2APIC).</summary>
    public void Write(uint offset)
    {
        if (Mode == GuestApicMode.X2Apic)
        {
            a.mov(ecx, Msr(offset));
            a.xor(edx, edx);
            a.wrmsr();
        }
        else
        {
            a.mov(__dword_ptr[Mmio(offset)], eax);
        }
    }

    /// <summary>Writes a constant to the register. Clobbers EAX, ECX, EDX.</summary>
    public void WriteConst(uint offset, uint value)
    {
        a.mov(eax, value);
        Write(offset);
    }

    /// <summary>
    /// Sends an IPI: EDX = destination APIC ID, EAX = ICR low (vector, mode, shorthand). x2APIC is
    /// one WRMSR to 0x830 (SDM 11.12.9); xAPIC writes ICR high (ID in bits 31:24), then ICR low,
    /// which sends. Clobbers ECX, EDX.
    /// </summary>
    public void SendIpi()
    {
        if (Mode == GuestApicMode.X2Apic)
        {
            a.mov(ecx, 0x830u);
            a.wrmsr();
        }
        else
        {
            a.shl(edx, 24);
            a.mov(__dword_ptr[Mmio(IcrHigh)], edx);
            a.mov(__dword_ptr[Mmio(IcrLow)], eax);
        }
    }

    /// <summary>Sends an IPI with a constant ICR to a constant destination. Clobbers EAX, ECX, EDX.</summary>
    public void SendIpi(uint destination, uint icrLow)
    {
        a.mov(edx, destination);
        a.mov(eax, icrLow);
        SendIpi();
    }

    /// <summary>End of interrupt. Clobbers EAX, ECX, EDX.</summary>
    public void EndOfInterrupt() => WriteConst(Eoi, 0);

    private static ulong Mmio(uint offset) => MmioBase + offset;

    private static uint Msr(uint offset) => 0x800 + (offset >> 4);
}
