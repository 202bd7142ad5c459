using ActorVm.Hardware.Exits;
using ActorVm.Hardware.X86;
using Iced.Intel;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Helpers for system-level guest tests on top of <see cref="CpuHarness"/>: a run loop that
/// also completes CPUID and MSR exits (injecting #GP for a failed MSR access, as the run loop
/// will), IDT gates, descriptors and 4 KiB page tables.
/// </summary>
internal static class SystemHarness
{
    public const ulong IdtBase = 0x1000;
    public const ulong HandlerBase = 0x20000;
    public const ulong TssBase = 0x3000;

    /// <summary>Runs until an exit other than IO/CPUID/MSR/kick; returns it. The first entry may inject an event.</summary>
    public static VmExit RunSystem(this CpuHarness h, EventInjection? inject = null, long budget = 1_000_000, bool interruptWindow = false)
    {
        var cpu = h.Cpu;
        while (true)
        {
            var exit = cpu.Run(new VmEntry(Injection: inject, InstructionBudget: budget, InterruptWindowExiting: interruptWindow));
            inject = null;
            budget -= exit.InstructionsRetired;
            VmExit? next = exit;
            while (next is { } e)
            {
                exit = e;
                switch (e.Reason)
                {
                    case ExitReason.IoInstruction:
                        next = PortIoExit.Handle(cpu, h.Machine.Io, e);
                        continue;
                    case ExitReason.Cpuid:
                        next = CpuidExit.Handle(cpu);
                        continue;
                    case ExitReason.MsrRead or ExitReason.MsrWrite:
                        var result = MsrExit.Handle(cpu, e, out next);
                        if (result == MsrExitResult.ApicMsr && e.Reason == ExitReason.MsrWrite && MsrExit.Index(e) == Msr.ApicBase)
                        {
                            // Stand-in for the LAPIC: IA32_APIC_BASE writes only need the CPU's checks here.
                            if (cpu.TryWriteApicBase(e.Value))
                            {
                                next = MsrExit.CompleteWrite(cpu);
                            }
                            else
                            {
                                inject = MsrExit.Fail(cpu);
                                next = null;
                            }
                        }
                        else if (result == MsrExitResult.ApicMsr)
                        {
                            return e;
                        }
                        else if (result == MsrExitResult.Fault)
                        {
                            inject = MsrExit.GeneralProtection;
                        }

                        continue;
                    default:
                        next = null;
                        break;
                }
            }

            if (exit.Reason is ExitReason.IoInstruction or ExitReason.Cpuid or ExitReason.MsrRead or ExitReason.MsrWrite)
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

    /// <summary>Assembles code for <paramref name="bitness"/> at <paramref name="address"/> and stores it.</summary>
    public static ulong Put(this CpuHarness h, int bitness, ulong address, Action<Assembler> build)
    {
        var asm = new Assembler(bitness);
        build(asm);
        var writer = new ListWriter();
        asm.Assemble(writer, address);
        h.LoadBytes(address, [.. writer.Bytes]);
        return address + (ulong)writer.Bytes.Count;
    }

    /// <summary>Length of the code <paramref name="build"/> assembles to (for computing instruction addresses).</summary>
    public static int Length(int bitness, Action<Assembler> build, ulong address = CpuHarness.CodeBase)
    {
        var asm = new Assembler(bitness);
        build(asm);
        var writer = new ListWriter();
        asm.Assemble(writer, address);
        return writer.Bytes.Count;
    }

    /// <summary>A 64-bit IDT gate (interrupt gate by default) at <see cref="IdtBase"/>.</summary>
    public static void Gate64(this CpuHarness h, int vector, ulong handler, ushort selector = CpuHarness.Code64,
        int type = 0xE, int dpl = 0, bool present = true, int ist = 0)
    {
        var lo = (handler & 0xFFFF) | ((ulong)selector << 16) | ((ulong)ist << 32) | ((ulong)type << 40)
            | ((ulong)dpl << 45) | (present ? 1UL << 47 : 0) | ((handler >> 16 & 0xFFFF) << 48);
        h.Machine.Memory.Write64(IdtBase + (ulong)(vector * 16), lo);
        h.Machine.Memory.Write64(IdtBase + (ulong)(vector * 16) + 8, handler >> 32);
    }

    /// <summary>A 32-bit IDT gate.</summary>
    public static void Gate32(this CpuHarness h, int vector, ulong handler, ushort selector = CpuHarness.Code32,
        int type = 0xE, int dpl = 0, bool present = true)
    {
        var d = (handler & 0xFFFF) | ((ulong)selector << 16) | ((ulong)type << 40)
            | ((ulong)dpl << 45) | (present ? 1UL << 47 : 0) | ((handler >> 16 & 0xFFFF) << 48);
        h.Machine.Memory.Write64(IdtBase + (ulong)(vector * 8), d);
    }

    public static void UseIdt(this CpuHarness h, int entries)
    {
        var size = h.Bitness == 64 ? 16 : 8;
        h.Cpu.Idtr = new DescriptorTable { Base = IdtBase, Limit = (ushort)(entries * size - 1) };
    }

    /// <summary>Puts a HLT stub for each vector at HandlerBase + 16·vector and installs its gate.</summary>
    public static void HaltingHandlers(this CpuHarness h, int entries = 32)
    {
        for (var v = 0; v < entries; v++)
        {
            var at = HandlerBase + (ulong)(v * 16);
            h.Put(h.Bitness, at, a => a.hlt());
            if (h.Bitness == 64) h.Gate64(v, at); else h.Gate32(v, at);
        }

        h.UseIdt(entries);
    }

    /// <summary>The vector whose HLT stub the CPU stopped in.</summary>
    public static int HaltedInHandler(this CpuHarness h) => (int)((h.Cpu.Rip - HandlerBase) / 16);

    /// <summary>Writes GDT entry <paramref name="index"/> (the harness's GDT) and widens GDTR.</summary>
    public static void Descriptor(this CpuHarness h, int index, ulong descriptor)
    {
        h.Machine.Memory.Write64(CpuHarness.GdtBase + (ulong)(index * 8), descriptor);
        var limit = (ushort)Math.Max(h.Cpu.Gdtr.Limit, (index * 8) + 7);
        h.Cpu.Gdtr = new DescriptorTable { Base = CpuHarness.GdtBase, Limit = limit };
    }

    public static ulong Stack(this CpuHarness h, int slot) => h.Machine.Memory.Read64(h.Cpu.Gpr[Cpu.RSP] + (ulong)(slot * 8));

    public static uint Stack32(this CpuHarness h, int slot) => h.Machine.Memory.Read32((uint)h.Cpu.Gpr[Cpu.RSP] + (uint)(slot * 4));

    private sealed class ListWriter : CodeWriter
    {
        public readonly List<byte> Bytes = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}

internal static class SystemHarnessRun
{
    /// <summary>Continues with <see cref="SystemHarness.RunSystem"/> unless completing an exit already produced the next one.</summary>
    public static VmExit RunAfter(this CpuHarness h, VmExit? next) => next ?? h.RunSystem();
}
