using ActorVm.Hardware.X86;
using CsCheck;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// The specialised handlers chosen at decode time (FastForms) must be indistinguishable from
/// the generic handlers: random programs of the specialised forms run both ways on random
/// register values and must leave identical registers, flags and memory.
/// </summary>
public class FastFormsEquivalenceTests
{
    private static readonly AssemblerRegister32[] Regs32 = [eax, ecx, edx, ebx, esi, edi, ebp];
    private static readonly AssemblerRegister64[] Regs64 = [rax, rcx, rdx, rbx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15];

    private static void Emit(Assembler a, int bitness, (int Op, int D, int S, int Imm) step)
    {
        var (op, d, s, imm) = step;
        if (bitness == 64 && op % 2 == 1)
        {
            var rd = Regs64[d % Regs64.Length];
            var rs = Regs64[s % Regs64.Length];
            switch (op / 2 % 9)
            {
                case 0: a.mov(rd, rs); break;
                case 1: a.add(rd, rs); break;
                case 2: a.sub(rd, imm); break;
                case 3: a.cmp(rd, rs); break;
                case 4: a.xor(rd, rs); break;
                case 5: a.test(rd, rs); break;
                case 6: a.inc(rd); break;
                case 7: a.dec(rd); break;
                default: a.add(rd, (sbyte)imm); break;
            }

            return;
        }

        var d32 = Regs32[d % Regs32.Length];
        var s32 = Regs32[s % Regs32.Length];
        switch (op / 2 % 13)
        {
            case 0: a.mov(d32, s32); break;
            case 1: a.add(d32, s32); break;
            case 2: a.add(d32, imm); break;
            case 3: a.sub(d32, s32); break;
            case 4: a.cmp(d32, imm); break;
            case 5: a.xor(d32, (uint)imm); break;
            case 6: a.and(d32, s32); break;
            case 7: a.or(d32, s32); break;
            case 8: a.inc(d32); break;
            case 9: a.dec(d32); break;
            case 10: a.mov(d32, imm); break;
            case 11: a.mov(__dword_ptr[0x9000 + (s % 16 * 4)], d32); break;
            default: a.mov(d32, __dword_ptr[0x9000 + (s % 16 * 4)]); break;
        }
    }

    private static (ulong[] Gpr, ulong Flags, byte[] Mem) Run(int bitness, bool fast, ulong[] init, ulong flags, (int, int, int, int)[] steps)
    {
        using var h = CpuHarness.Create(bitness);
        h.Cpu.UseFastForms = fast;
        h.Load(a =>
        {
            foreach (var s in steps)
            {
                Emit(a, bitness, s);
                // Observe the flags after every step, so a wrong lazy record shows up.
                if (bitness == 64) a.pushfq(); else a.pushfd();
            }

            a.hlt();
        });
        init.AsSpan().CopyTo(h.Cpu.Gpr);
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;
        h.Cpu.SetFlagsRaw(flags);
        var exit = h.Run();
        Assert.Equal(ExitReason.Hlt, exit.Reason);
        return ((ulong[])h.Cpu.Gpr.Clone(), h.Cpu.Flags, h.Machine.Memory.ReadBytes(0x6000, 0x4000));
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void SpecialisedAndGenericHandlersAgree(int bitness)
    {
        var step = Gen.Select(Gen.Int[0, 63], Gen.Int[0, 15], Gen.Int[0, 15], Gen.Int);
        Gen.Select(Gen.ULong.Array[16], Gen.ULong, step.Array[1, 24])
            .Sample((init, flags, steps) =>
            {
                var f = (flags & (Rflags.Status | Rflags.DF)) | 2;
                var generic = Run(bitness, fast: false, init, f, steps);
                var special = Run(bitness, fast: true, init, f, steps);
                Assert.Equal(generic.Gpr, special.Gpr);
                Assert.Equal(generic.Flags, special.Flags);
                Assert.Equal(generic.Mem, special.Mem);
            }, iter: 300);
    }
}
