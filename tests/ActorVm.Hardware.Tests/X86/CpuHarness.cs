using ActorVm.Hardware;
using ActorVm.Hardware.Exits;
using ActorVm.Hardware.X86;
using Cpu = ActorVm.Hardware.X86.Cpu;
using Iced.Intel;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// A bare processor for instruction tests: flat memory, a ready GDT, and the CPU placed
/// directly in real, 32-bit protected or 64-bit long mode (identity-mapped with 1 GiB pages).
/// Runs code until HLT, handling port I/O against the machine's bus.
/// </summary>
public sealed class CpuHarness : IDisposable
{
    public const ulong CodeBase = 0x8000;
    public const ulong StackTop = 0x7000;
    public const ulong GdtBase = 0x500;
    public const ulong PageTables = 0x10000;

    /// <summary>GDT selectors the harness installs.</summary>
    public const ushort Code32 = 0x08, Data = 0x10, Code64 = 0x18, Code16 = 0x20, Data16 = 0x28;

    private CpuHarness(int bitness, ulong memoryMiB, int cpus)
    {
        Bitness = bitness;
        Machine = new Machine(new MachineConfig(cpus, memoryMiB), new ManualTscClock());
        Cpu = Machine.Cpus[0];
        InstallGdt();
        foreach (var cpu in Machine.Cpus)
        {
            EnterMode(cpu, bitness);
        }
    }

    public int Bitness { get; }

    public Machine Machine { get; }

    public Cpu Cpu { get; }

    public static CpuHarness Create(int bitness, ulong memoryMiB = 4) => new(bitness, memoryMiB, 1);

    /// <summary>A harness with several vCPUs, all in the same mode and sharing memory (each needs its own stack).</summary>
    public static CpuHarness CreateSmp(int bitness, int cpus, ulong memoryMiB = 4) => new(bitness, memoryMiB, cpus);

    /// <summary>Assembles code with Iced for the harness's mode at <paramref name="address"/>.</summary>
    public byte[] Assemble(Action<Assembler> build, ulong address = CodeBase)
    {
        var asm = new Assembler(Bitness);
        build(asm);
        var writer = new MemoryCodeWriter();
        asm.Assemble(writer, address);
        return writer.ToArray();
    }

    /// <summary>Assembles, loads at <see cref="CodeBase"/> and points RIP there.</summary>
    public CpuHarness Load(Action<Assembler> build)
    {
        LoadBytes(CodeBase, Assemble(build));
        Cpu.Rip = CodeBase;
        return this;
    }

    public void LoadBytes(ulong address, byte[] code) => Machine.Memory.WriteBytes(address, code);

    /// <summary>Where <see cref="InstallFaultStubs"/> puts one HLT per vector, 16 bytes apart.</summary>
    public const ulong FaultStubs = 0x9000;
    public const ulong IdtBase = 0xA000;

    /// <summary>
    /// Points every exception vector (IVT in real mode, IDT otherwise) at a HLT at
    /// <see cref="FaultStubs"/> + 16 × vector, so a test sees which exception was raised from
    /// where execution stopped, with the registers untouched.
    /// </summary>
    public void InstallFaultStubs()
    {
        var hlts = new byte[0x1000];
        Array.Fill(hlts, (byte)0xF4);
        LoadBytes(FaultStubs, hlts);
        for (ulong v = 0; v < 256; v++)
        {
            var target = FaultStubs + (v * 16);
            if (Bitness == 16)
            {
                Machine.Memory.Write32(v * 4, (uint)target & 0xFFFF); // offset, segment 0
            }
            else
            {
                var selector = Bitness == 64 ? Code64 : Code32;
                var gate = (target & 0xFFFF) | ((ulong)selector << 16) | (0x8E00UL << 32) | ((target >> 16) << 48);
                var stride = Bitness == 64 ? 16UL : 8UL;
                Machine.Memory.Write64(IdtBase + (v * stride), gate);
                if (Bitness == 64)
                {
                    Machine.Memory.Write64(IdtBase + (v * stride) + 8, 0);
                }
            }
        }

        Cpu.Idtr = Bitness == 16
            ? new DescriptorTable { Base = 0, Limit = 0x3FF }
            : new DescriptorTable { Base = IdtBase, Limit = (ushort)((Bitness == 64 ? 16 : 8) * 256 - 1) };
    }

    /// <summary>The exception vector whose stub execution stopped at, or null if it stopped elsewhere.</summary>
    public int? FaultVector => Cpu.Rip >= FaultStubs && Cpu.Rip < FaultStubs + 0x1000 ? (int)((Cpu.Rip - FaultStubs) / 16) : null;

    /// <summary>Runs until HLT (returned) or another exit this harness does not handle (also returned).</summary>
    public VmExit Run(long maxInstructions = 10_000_000) => Run(Cpu, maxInstructions);

    /// <summary>Runs one vCPU of an SMP harness (see <see cref="Run(long)"/>); safe to call for different vCPUs on different threads.</summary>
    public VmExit Run(Cpu cpu, long maxInstructions = 10_000_000)
    {
        var budget = maxInstructions;
        while (true)
        {
            var exit = cpu.Run(new VmEntry(InstructionBudget: budget));
            budget -= exit.InstructionsRetired;
            while (exit.Reason == ExitReason.IoInstruction)
            {
                if (PortIoExit.Handle(cpu, Machine.Io, exit) is not { } next)
                {
                    break;
                }

                exit = next;
            }

            if (exit.Reason == ExitReason.IoInstruction)
            {
                continue;
            }

            if (exit.Reason == ExitReason.ExternalInterrupt && budget > 0)
            {
                continue;
            }

            return exit;
        }
    }

    private void InstallGdt()
    {
        ulong[] gdt =
        [
            0,
            0x00CF9B000000FFFF, // 0x08 code32 flat
            0x00CF93000000FFFF, // 0x10 data flat
            0x00AF9B000000FFFF, // 0x18 code64
            0x00009B000000FFFF, // 0x20 code16
            0x000093000000FFFF, // 0x28 data16
        ];
        for (var i = 0; i < gdt.Length; i++)
        {
            Machine.Memory.Write64(GdtBase + (ulong)(i * 8), gdt[i]);
        }

        foreach (var cpu in Machine.Cpus)
        {
            cpu.Gdtr = new DescriptorTable { Base = GdtBase, Limit = (ushort)(gdt.Length * 8 - 1) };
        }
    }

    private void EnterMode(Cpu cpu, int bitness)
    {
        cpu.Cr0 = Cr0Bits.ET | Cr0Bits.NE;
        cpu.Gpr[Cpu.RSP] = StackTop;
        cpu.SetFlagsRaw(2);
        if (bitness == 16)
        {
            for (var s = 0; s < 6; s++)
            {
                cpu.Seg[s] = Segment.Real(0, s == 1 ? (ushort)0x9B : (ushort)0x93);
            }
        }
        else
        {
            cpu.Cr0 |= Cr0Bits.PE;
            var code = bitness == 64 ? Code64 : Code32;
            cpu.Seg[(int)SegReg.CS] = Segment.FromDescriptor(code, Machine.Memory.Read64(GdtBase + code));
            foreach (var s in new[] { SegReg.ES, SegReg.SS, SegReg.DS, SegReg.FS, SegReg.GS })
            {
                cpu.Seg[(int)s] = Segment.FromDescriptor(Data, Machine.Memory.Read64(GdtBase + Data));
            }

            if (bitness == 64)
            {
                // PML4[0] → PDPT with four 1 GiB identity pages.
                Machine.Memory.Write64(PageTables, (PageTables + 0x1000) | 3);
                for (ulong i = 0; i < 4; i++)
                {
                    Machine.Memory.Write64(PageTables + 0x1000 + (i * 8), (i << 30) | 0x83);
                }

                cpu.Cr3 = PageTables;
                cpu.Cr4 = Cr4Bits.PAE;
                cpu.Efer = EferBits.LME | EferBits.LMA;
                cpu.Cr0 |= Cr0Bits.PG;
            }
        }

        cpu.FlushTlb();
        cpu.UpdateMode();
    }

    public void Dispose() => Machine.Dispose();

    private sealed class MemoryCodeWriter : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}
