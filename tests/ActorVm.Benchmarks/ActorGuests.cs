using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// Real-mode guests for the actor-layer probes (<see cref="ActorProbes"/>), loaded straight
/// into the machine like the actor tests' TestGuest: x2APIC MSR writes, a counter at 0x600,
/// and the debug-exit port to end the VM.
/// </summary>
public static class ActorGuests
{
    public const ushort CodeBase = 0x1000;
    public const ushort ApCode = 0x2000;
    public const ushort StackTop = 0x7000;
    public const ushort Counter = 0x600;
    public const ushort Counter2 = 0x604;
    public const byte IpiVector = 0x40;

    public static byte[] Assemble16(ulong address, Action<Assembler> build)
    {
        var asm = new Assembler(16);
        build(asm);
        var stream = new MemoryStream();
        asm.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    public static void LoadReal(Machine machine, int cpu, Action<Assembler> build)
    {
        machine.Memory.WriteBytes(CodeBase, Assemble16(CodeBase, build));
        var c = machine.Cpus[cpu];
        for (var s = 0; s < 6; s++)
        {
            c.Seg[s] = Segment.Real(0, s == (int)SegReg.CS ? (ushort)0x9B : (ushort)0x93);
        }

        c.Gpr[Cpu.RSP] = StackTop;
        c.Rip = CodeBase;
        c.UpdateMode();
    }

    /// <summary>IVT entry <paramref name="vector"/> → 0000:<paramref name="at"/>, handler assembled there.</summary>
    public static void Handler(Machine machine, byte vector, ushort at, Action<Assembler> build)
    {
        machine.Memory.Write32((ulong)vector * 4, at);
        machine.Memory.WriteBytes(at, Assemble16(at, build));
    }

    public static void Wrmsr(this Assembler a, uint index, ulong value)
    {
        a.mov(ecx, index);
        a.mov(eax, (uint)value);
        a.mov(edx, (uint)(value >> 32));
        a.wrmsr();
    }

    public static void EnableX2Apic(this Assembler a, bool bsp)
    {
        a.Wrmsr(Msr.ApicBase, 0xFEE00000UL | (1 << 11) | (1 << 10) | (bsp ? 1UL << 8 : 0));
        a.Wrmsr(0x80F, 0x1FF);
    }

    public static void Eoi(this Assembler a) => a.Wrmsr(0x80B, 0);

    /// <summary>INIT, then SIPI to <see cref="ApCode"/> (vector 2 → 0200:0000), both to all excluding self (x2APIC ICR).</summary>
    public static void StartAps(this Assembler a)
    {
        a.Wrmsr(0x830, 0xC4500);
        a.Wrmsr(0x830, 0xC4600 | (ApCode >> 12));
    }

    /// <summary>CLI; check; STI; HLT until the dword at <paramref name="counter"/> reaches <paramref name="target"/> (STI's shadow makes the check-then-halt race-free, SDM 6.8.3).</summary>
    public static void WaitFor(this Assembler a, ushort counter, int target)
    {
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref wait);
        a.cli();
        a.cmp(__dword_ptr[counter], target);
        a.jae(done);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref done);
        a.sti();
    }

    public static void DebugExit(this Assembler a)
    {
        a.mov(dx, Hardware.Devices.DebugExit.DefaultPort);
        a.xor(al, al);
        a.@out(dx, al);
        a.cli();
        a.hlt();
    }

    /// <summary>The debug-exit device, wired to end the VM.</summary>
    public static void AttachDebugExit(Machine m, IVmControl control)
    {
        var debugExit = new DebugExit();
        control.ShutdownOn(debugExit);
        m.Io.Register(Hardware.Devices.DebugExit.DefaultPort, Hardware.Devices.DebugExit.PortCount, debugExit);
    }

    /// <summary>An empty port for OUT exits (the slowpath probe).</summary>
    public sealed class NullPort : IIoDevice
    {
        public uint In(ushort port, int size) => 0;

        public void Out(ushort port, int size, uint value)
        {
        }
    }

    /// <summary>Loops <paramref name="n"/> times over <paramref name="body"/> (CX-free bodies: the loop counter is EBP).</summary>
    public static void Repeat(this Assembler a, int n, Action body)
    {
        a.mov(ebp, (uint)n);
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        a.test(ebp, ebp);
        a.jz(done);
        a.Label(ref loop);
        body();
        a.dec(ebp);
        a.jnz(loop);
        a.Label(ref done);
    }
}
