using System.Runtime.CompilerServices;
using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware.X86;

/// <summary>
/// One x86 logical processor: architectural state plus the interpreter that runs it. Not
/// thread-safe: exactly one thread runs or inspects a Cpu at a time (the vCPU actor while the
/// guest runs, the run-loop actor between exits). See the partial files for each concern:
/// registers, flags, memory and paging, events, the run loop.
/// </summary>
public sealed unsafe partial class Cpu
{
    public Cpu(int id, GuestMemory memory, ITscClock clock, CpuModel? model = null)
    {
        Id = id;
        Memory = memory;
        Clock = clock;
        Model = model ?? CpuModel.Default;
        _gpr = (ulong*)Unsafe.AsPointer(ref Gpr[0]);
        _seg = (Segment*)Unsafe.AsPointer(ref Seg[0]);
        _tlbBase = (TlbEntry*)Unsafe.AsPointer(ref _tlb[0]);
        Reset(isBsp: id == 0);
    }

    /// <summary>The vCPU index, which is also its initial APIC ID.</summary>
    public int Id { get; }

    public GuestMemory Memory { get; }

    public ITscClock Clock { get; }

    public CpuModel Model { get; }

    /// <summary>The kick line: the run loop's mode word, polled at every block boundary.</summary>
    public ModeWord ModeWord { get; set; } = new();

    /// <summary>Instructions that raised #UD because the interpreter does not implement them.</summary>
    public long UnsupportedInstructions { get; internal set; }

    /// <summary>Instructions retired since creation (the slices before the current one, plus its count so far).</summary>
    public long InstructionsRetired => _retiredBeforeSlice + _sliceRetired;

    /// <summary>
    /// Puts the processor in its power-up / INIT state (SDM 10.1.1, table 10-1): real mode,
    /// CS:IP = F000:FFF0, EDX = family/model/stepping. The BSP flag only affects IA32_APIC_BASE.
    /// </summary>
    public void Reset(bool isBsp)
    {
        Array.Clear(Gpr);
        Rip = 0xFFF0;
        SetFlagsRaw(0x2);
        for (var i = 0; i < 6; i++)
        {
            Seg[i] = Segment.Real(0);
        }

        Seg[(int)SegReg.CS] = new Segment { Selector = 0xF000, Base = 0xFFFF0000, Limit = 0xFFFF, Attributes = 0x9B };
        Gdtr = new DescriptorTable { Limit = 0xFFFF };
        Idtr = new DescriptorTable { Limit = 0xFFFF };
        Ldtr = new Segment { Limit = 0xFFFF, Attributes = 0x82 };
        Tr = new Segment { Limit = 0xFFFF, Attributes = 0x8B };
        Cr0 = Cr0Bits.ET | Cr0Bits.CD | Cr0Bits.NW;
        Cr2 = Cr3 = Cr4 = 0;
        Efer = 0;
        Dr6 = 0xFFFF0FF0;
        Dr7 = 0x400;
        Array.Clear(Dr, 0, 4);
        Gpr[2] = Model.Signature;
        ApicBase = CpuModel.DefaultApicBase | MsrApicBase.Enable | (isBsp ? MsrApicBase.Bsp : 0);
        Msrs.Reset();
        Xmm.AsSpan().Clear();
        Fpu.Reset();
        Mxcsr = 0x1F80;
        InterruptShadow = false;
        NmiBlocked = false;
        Halted = false;
        FlushTlb();
        UpdateMode();
    }
}
