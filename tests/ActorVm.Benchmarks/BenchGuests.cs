using ActorVm.Hardware.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// The guest loops of the suite. Each loop's body has a fixed instruction count
/// (<see cref="BenchGuest.InstructionsPerIteration"/>) so MIPS follows from the iteration count.
/// A loop is one emitter (<see cref="BenchGuest.EmitLoop"/>) shared by the Multiboot kernel that
/// ActorVm and QEMU boot (<see cref="BenchGuest.Build"/>, ending through the debug-exit port with
/// 0, status 1) and the floppy boot sector Bochs boots (<see cref="BootSector"/>), so every
/// emulator runs the identical instruction sequence.
/// </summary>
public static class BenchGuests
{
    /// <summary>
    /// A loop: its name, the instructions one iteration retires, the mode it runs in (32:
    /// protected mode, flat segments; 64: long mode, 4-level paging with 2 MiB pages identity
    /// mapping the first 1 GiB) and the emitter of the loop from its set-up to its last iteration.
    /// </summary>
    public sealed record BenchGuest(string Name, int InstructionsPerIteration, int Bitness, Action<Assembler, int> EmitLoop)
    {
        /// <summary>The Multiboot kernel: the loop, then debug-exit 0 (the integer loop also checks its checksum).</summary>
        public byte[] Build(int iterations, KernelFormat format = KernelFormat.AoutKludge)
        {
            if (Name == "integer")
            {
                return GuestPrograms.BuildCompute(iterations, format);
            }

            var k = new MultibootKernelBuilder();
            var c = Bitness == 64 ? k.EnterLongMode() : k.Code32;
            EmitLoop(c.A, iterations);
            c.DebugExit(0);
            return k.Build(format);
        }
    }

    public static IReadOnlyList<BenchGuest> All { get; } =
    [
        new("integer", GuestPrograms.ComputeInstructionsPerIteration, 32, GuestPrograms.EmitAnchorLoop),
        new("memory", 7, 64, EmitMemoryLoop),
        new("branchy", 9, 32, EmitBranchyLoop),
        new("callret", 6, 32, EmitCallRetLoop),
    ];

    public static BenchGuest Find(string name) =>
        All.FirstOrDefault(g => g.Name == name) ?? throw new ArgumentException($"unknown guest loop '{name}' ({string.Join(", ", All.Select(g => g.Name))})");

    /// <summary>Long mode: walk a 2 MiB buffer with a 4 KiB + 64 stride, loading and storing (TLB and page-walk heavy).</summary>
    public static void EmitMemoryLoop(Assembler a, int iterations)
    {
        a.mov(ecx, iterations);
        a.mov(rsi, 0x400000);
        a.xor(eax, eax);
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.add(rax, __qword_ptr[rsi]);
        a.mov(__qword_ptr[rsi + 8], rax);
        a.add(rsi, 4096 + 64);
        a.and(rsi, 0x1FFFFF);
        a.or(rsi, 0x400000);
        a.dec(ecx);
        a.jnz(loop);
    }

    /// <summary>
    /// 32-bit: a data-dependent branch every iteration (taken on odd counters) plus a
    /// compare-and-branch; 9 instructions per iteration whichever way the branch goes.
    /// </summary>
    public static void EmitBranchyLoop(Assembler a, int iterations)
    {
        a.mov(ecx, iterations);
        a.xor(eax, eax);
        a.xor(ebx, ebx);
        var loop = a.CreateLabel();
        var odd = a.CreateLabel();
        var join = a.CreateLabel();
        a.Label(ref loop);
        a.test(ecx, 1);          // 1
        a.jnz(odd);              // 2
        a.add(eax, ecx);         // 3 (even)
        a.jmp(join);             // 4
        a.Label(ref odd);
        a.sub(ebx, ecx);         // 3 (odd)
        a.nop();                 // 4
        a.Label(ref join);
        a.cmp(eax, ebx);         // 5
        a.lea(edx, __[eax + ebx * 2 + 7]); // 6
        a.shr(edx, 3);           // 7
        a.dec(ecx);              // 8
        a.jnz(loop);             // 9
    }

    /// <summary>32-bit: a call to a leaf function every iteration: call, push, pop, ret, dec, jnz (6 instructions).</summary>
    public static void EmitCallRetLoop(Assembler a, int iterations)
    {
        var loop = a.CreateLabel();
        var leaf = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(ecx, iterations);
        a.xor(eax, eax);
        a.Label(ref loop);
        a.call(leaf);            // 1
        a.dec(ecx);              // 5
        a.jnz(loop);             // 6
        a.jmp(done);
        a.Label(ref leaf);
        a.push(ecx);             // 2
        a.pop(edx);              // 3
        a.ret();                 // 4
        a.Label(ref done);
    }
}
