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

    internal static void Emit(Assembler a, int bitness, (int Op, int D, int S, int Imm) step)
    {
        var (op, d, s, imm) = step;
        if (bitness == 64 && op % 2 == 1)
        {
            var rd = Regs64[d % Regs64.Length];
            var rs = Regs64[s % Regs64.Length];
            switch (op / 2 % 15)
            {
                case 9: a.and(rd, rs); break;
                case 10: a.and(rd, imm); break;
                case 11: a.or(rd, rs); break;
                case 12: a.or(rd, (sbyte)imm); break;
                case 13: a.xor(rd, imm); break;
                case 14: a.test(rd, imm); break;
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
        switch (op / 2 % 16)
        {
            case 13: a.or(d32, imm); break;
            case 14: a.or(d32, (sbyte)imm); break;
            case 15: a.test(d32, imm); break;
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

    private const int DataBase = 0x6000;

    /// <summary>
    /// The second family: shifts by an immediate and by 1, every Jcc condition (over a
    /// one-instruction skip), JMP, CALL/RET, PUSH/POP, LEA, MOVZX and loads, stores and ALU
    /// operations with [base + index*scale + disp] addresses (base = DataBase in EDI/RDI, a
    /// small index in ESI/RSI, both set by the step itself so the address is always valid).
    /// </summary>
    internal static void EmitFlowAndAddressing(Assembler a, int bitness, (int Op, int D, int S, int Imm) step)
    {
        var (op, d, s, imm) = step;
        var wide = bitness == 64 && (imm & 1) == 1;
        // Destinations avoid EDI/ESI (the address registers) and ESP.
        AssemblerRegister32[] dst32 = [eax, ecx, edx, ebx, ebp];
        AssemblerRegister64[] dst64 = [rax, rcx, rdx, rbx, rbp, r8, r9, r12, r15];
        var d32 = dst32[d % dst32.Length];
        var s32 = dst32[s % dst32.Length];
        var d64 = dst64[d % dst64.Length];
        var s64 = dst64[s % dst64.Length];
        var count = (byte)((uint)imm >> 8) % 70;
        var disp = (imm >> 4) & 0xFC;

        void Address()
        {
            // 32-bit writes zero-extend, so these set RDI/RSI in 64-bit mode too.
            a.mov(edi, DataBase);
            a.mov(esi, s % 16);
        }

        AssemblerMemoryOperand Mem32() => bitness == 64 ? __dword_ptr[rdi + rsi * 4 + disp] : __dword_ptr[edi + esi * 4 + disp];
        AssemblerMemoryOperand Mem64() => __qword_ptr[rdi + rsi * 8 + disp];

        switch (op % 24)
        {
            case 0: if (wide) a.shl(d64, (byte)count); else a.shl(d32, (byte)count); break;
            case 1: if (wide) a.shr(d64, (byte)count); else a.shr(d32, (byte)count); break;
            case 2: if (wide) a.sar(d64, (byte)count); else a.sar(d32, (byte)count); break;
            case 3:
                switch (s % 3)
                {
                    case 0: if (wide) a.shl(d64, 1); else a.shl(d32, 1); break;
                    case 1: if (wide) a.shr(d64, 1); else a.shr(d32, 1); break;
                    default: if (wide) a.sar(d64, 1); else a.sar(d32, 1); break;
                }

                break;
            case 19:
            {
                // A shift's lazily recorded flags read directly by a Jcc and by DEC (which keeps CF).
                a.shl(d32, (byte)(1 + (count % 31)));
                var skip = a.CreateLabel();
                Jcc(a, s % 16, skip);
                a.dec(s32);
                a.Label(ref skip);
                a.rcl(s32, 1);
                break;
            }

            case 4:
            case 5:
            {
                // A flag-setting op, then Jcc over an INC: which way it went shows in the register.
                if (op % 2 == 0) a.cmp(d32, s32); else a.sub(d32, imm);
                var skip = a.CreateLabel();
                Jcc(a, s % 16, skip);
                a.inc(s32);
                a.Label(ref skip);
                break;
            }

            case 6:
            {
                var over = a.CreateLabel();
                a.jmp(over);
                a.inc(d32);
                a.Label(ref over);
                break;
            }

            case 7:
            {
                // CALL to a leaf that pushes and pops, then RET; the return address is observable on the stack area.
                var leaf = a.CreateLabel();
                var after = a.CreateLabel();
                a.call(leaf);
                a.jmp(after);
                a.Label(ref leaf);
                if (bitness == 64) { a.push(d64); a.pop(s64); } else { a.push(d32); a.pop(s32); }
                a.ret();
                a.Label(ref after);
                break;
            }

            case 8: if (bitness == 64) { a.push(s64); a.pop(d64); } else { a.push(s32); a.pop(d32); } break;
            case 9: Address(); if (wide) a.lea(d64, __[rdi + rsi * 8 + disp]); else if (bitness == 64) a.lea(d32, __[rdi + rsi * 2 + disp]); else a.lea(d32, __[edi + esi * 2 + disp]); break;
            case 10: Address(); a.mov(Mem32(), d32); break;
            case 11: Address(); a.mov(d32, Mem32()); break;
            case 12: Address(); if (wide) a.mov(Mem64(), d64); else a.add(d32, Mem32()); break;
            case 13: Address(); if (wide) a.mov(d64, Mem64()); else a.sub(d32, Mem32()); break;
            case 14: Address(); if (wide) a.add(d64, Mem64()); else a.cmp(d32, Mem32()); break;
            case 15: Address(); if (wide) a.cmp(d64, Mem64()); else a.and(d32, Mem32()); break;
            case 16: Address(); if (s % 2 == 0) a.or(d32, Mem32()); else a.xor(d32, Mem32()); break;
            case 17:
                Address();
                if (bitness == 64)
                {
                    if (s % 2 == 0) a.movzx(d32, __byte_ptr[rdi + rsi + disp]); else a.movzx(d64, __word_ptr[rdi + rsi * 2 + disp]);
                }
                else
                {
                    if (s % 2 == 0) a.movzx(d32, __byte_ptr[edi + esi + disp]); else a.movzx(d32, __word_ptr[edi + esi * 2 + disp]);
                }

                break;
            case 20:
            case 21:
            case 22:
            case 23:
            {
                // Fused pairs: a flag-setting op right before a Jcc that closes the block.
                var skip = a.CreateLabel();
                EmitFlagSetter(a, op % 24, wide, d32, s32, d64, s64, imm, Address, Mem32, Mem64);
                Jcc(a, (imm >> 2) & 15, skip);
                a.inc(s32);
                a.Label(ref skip);
                break;
            }

            case 18:
                // MOVZX from registers, including the high-byte ones.
                switch (s % 4)
                {
                    case 0: a.movzx(d32, bl); break;
                    case 1: a.movzx(d32, ah); break;
                    case 2: a.movzx(d32, cx); break;
                    default: if (bitness == 64) a.movzx(d64, dl); else a.movzx(d32, dh); break;
                }

                break;
        }
    }

    /// <summary>The first halves of the fused pairs: DEC/INC, TEST, CMP/ADD/SUB with an immediate or register, CMP with memory.</summary>
    private static void EmitFlagSetter(Assembler a, int kind, bool wide, AssemblerRegister32 d32, AssemblerRegister32 s32,
        AssemblerRegister64 d64, AssemblerRegister64 s64, int imm, Action address, Func<AssemblerMemoryOperand> mem32, Func<AssemblerMemoryOperand> mem64)
    {
        var variant = (imm >> 6) & 3;
        switch (kind)
        {
            case 20:
                if (variant % 2 == 0) { if (wide) a.dec(d64); else a.dec(d32); }
                else { if (wide) a.inc(d64); else a.inc(d32); }
                break;
            case 21:
                switch (variant)
                {
                    case 0: if (wide) a.test(d64, s64); else a.test(d32, s32); break;
                    case 1: if (wide) a.cmp(d64, s64); else a.cmp(d32, s32); break;
                    default: if (wide) a.test(d64, imm >> 4); else a.test(d32, imm >> 4); break;
                }

                break;
            case 22:
                switch (variant)
                {
                    case 0: if (wide) a.cmp(d64, imm >> 8); else a.cmp(d32, imm >> 8); break;
                    case 1: if (wide) a.sub(d64, (sbyte)imm); else a.sub(d32, (sbyte)imm); break;
                    default: if (wide) a.add(d64, imm >> 12); else a.add(d32, imm >> 12); break;
                }

                break;
            default:
                address();
                if (wide) a.cmp(d64, mem64()); else a.cmp(d32, mem32());
                break;
        }
    }

    private static void Jcc(Assembler a, int cc, Label target)
    {
        switch (cc)
        {
            case 0: a.jo(target); break;
            case 1: a.jno(target); break;
            case 2: a.jb(target); break;
            case 3: a.jae(target); break;
            case 4: a.je(target); break;
            case 5: a.jne(target); break;
            case 6: a.jbe(target); break;
            case 7: a.ja(target); break;
            case 8: a.js(target); break;
            case 9: a.jns(target); break;
            case 10: a.jp(target); break;
            case 11: a.jnp(target); break;
            case 12: a.jl(target); break;
            case 13: a.jge(target); break;
            case 14: a.jle(target); break;
            default: a.jg(target); break;
        }
    }

    private static (ulong[] Gpr, ulong Flags, byte[] Mem) Run(int bitness, bool fast, ulong[] init, ulong flags, (int, int, int, int)[] steps)
        => Run(bitness, fast, init, flags, steps, Emit);

    private static (ulong[] Gpr, ulong Flags, byte[] Mem) Run(int bitness, bool fast, ulong[] init, ulong flags, (int, int, int, int)[] steps,
        Action<Assembler, int, (int, int, int, int)> emit)
    {
        using var h = CpuHarness.Create(bitness);
        h.Cpu.UseFastForms = fast;
        h.Load(a =>
        {
            foreach (var s in steps)
            {
                emit(a, bitness, s);
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

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void SpecialisedShiftBranchStackAndAddressingFormsAgree(int bitness)
    {
        var step = Gen.Select(Gen.Int[0, 63], Gen.Int[0, 15], Gen.Int[0, 15], Gen.Int);
        Gen.Select(Gen.ULong.Array[16], Gen.ULong, step.Array[1, 24])
            .Sample((init, flags, steps) =>
            {
                var f = (flags & (Rflags.Status | Rflags.DF)) | 2;
                var generic = Run(bitness, fast: false, init, f, steps, EmitFlowAndAddressing);
                var special = Run(bitness, fast: true, init, f, steps, EmitFlowAndAddressing);
                Assert.Equal(generic.Gpr, special.Gpr);
                Assert.Equal(generic.Flags, special.Flags);
                Assert.Equal(generic.Mem, special.Mem);
            }, iter: 300);
    }

    /// <summary>The fast path must actually be taken for the forms the second family emits (else the test above compares generic with generic).</summary>
    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void EveryFormOfTheSecondFamilyHasASpecialisedHandler(int bitness)
    {
        var codes = new List<Iced.Intel.Instruction>();
        for (var op = 0; op < 24; op++)
        {
            for (var s = 0; s < 4; s++)
            {
                for (var imm = 0; imm < 2; imm++)
                {
                    var a = new Assembler(bitness);
                    EmitFlowAndAddressing(a, bitness, (op, 1, s, 0x30F0 | imm));
                    a.hlt();
                    var stream = new MemoryStream();
                    a.Assemble(new StreamCodeWriter(stream), 0x8000);
                    var decoder = Iced.Intel.Decoder.Create(bitness, stream.ToArray(), 0x8000);
                    while (decoder.IP < 0x8000 + (ulong)stream.Length)
                    {
                        codes.Add(decoder.Decode());
                    }
                }
            }
        }

        var generic = codes.Where(i => i.Code != Code.Hlt && i.Code is not (Code.Inc_rm32 or Code.Inc_r32 or Code.Rcl_rm32_1) && ActorVm.Hardware.X86.Instructions.FastForms.Select(i) == 0)
            .Select(i => i.ToString()).Distinct().ToList();
        Assert.Empty(generic);
    }

    /// <summary>The register and immediate forms of the first family all have specialised handlers (its absolute-address loads and stores do not).</summary>
    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void EveryRegisterFormOfTheFirstFamilyHasASpecialisedHandler(int bitness)
    {
        var generic = new List<string>();
        for (var op = 0; op < 64; op++)
        {
            var a = new Assembler(bitness);
            Emit(a, bitness, (op, 1, 2, -100));
            Emit(a, bitness, (op, 3, 3, 0x12345));
            var stream = new MemoryStream();
            a.Assemble(new StreamCodeWriter(stream), 0x8000);
            var decoder = Iced.Intel.Decoder.Create(bitness, stream.ToArray(), 0x8000);
            while (decoder.IP < 0x8000 + (ulong)stream.Length)
            {
                var ins = decoder.Decode();
                if (ins.Op0Kind != OpKind.Memory && ins.Op1Kind != OpKind.Memory && ActorVm.Hardware.X86.Instructions.FastForms.Select(ins) == 0)
                {
                    generic.Add(ins.ToString());
                }
            }
        }

        Assert.Empty(generic.Distinct());
    }

    /// <summary>Every flag-setter + Jcc pair the second family emits is fused (else the equivalence test above never runs a fused handler).</summary>
    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void EveryFlagSetterAndJccPairOfTheSecondFamilyIsFused(int bitness)
    {
        var pairs = 0;
        for (var op = 20; op < 24; op++)
        {
            for (var imm = 0; imm < 1024; imm += 61)
            {
                var a = new Assembler(bitness);
                EmitFlowAndAddressing(a, bitness, (op, 1, 2, imm));
                a.hlt();
                var stream = new MemoryStream();
                a.Assemble(new StreamCodeWriter(stream), 0x8000);
                var decoder = Iced.Intel.Decoder.Create(bitness, stream.ToArray(), 0x8000);
                var ops = new List<DecodedInstruction>();
                while (decoder.IP < 0x8000 + (ulong)stream.Length)
                {
                    var ins = decoder.Decode();
                    var d = DecodedInstruction.From(ins);
                    d.Handler = d.Solo = ActorVm.Hardware.X86.Instructions.FastForms.Select(ins);
                    ops.Add(d);
                }

                // ... flag-setter; Jcc; INC; HLT.
                var first = ops[^4];
                Assert.True(ActorVm.Hardware.X86.Instructions.FastForms.TryFuse(ref first, ops[^3]), $"{ops[^4].Instruction} ; {ops[^3].Instruction} not fused");
                Assert.NotEqual(first.Solo, first.Handler);
                Assert.Equal((ops[^3].Imm, ops[^3].NextIp), (first.FusedTarget, first.FusedNext));
                pairs++;
            }
        }

        Assert.Equal(4 * 17, pairs);
    }

    /// <summary>The fast forms' inlined segment choice must be Iced's MemorySegment for every base and override.</summary>
    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void LeanSegmentIsTheMemorySegment(int bitness)
    {
        var a = new Assembler(bitness);
        AssemblerRegister32[] bases32 = [eax, ecx, edx, ebx, esp, ebp, esi, edi];
        AssemblerRegister64[] bases64 = [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r12, r13, r15];
        AssemblerMemoryOperandFactory[] prefixes =
            [__dword_ptr, __dword_ptr.es, __dword_ptr.cs, __dword_ptr.ss, __dword_ptr.ds, __dword_ptr.fs, __dword_ptr.gs];
        foreach (var m in prefixes)
        {
            foreach (var b in bases32)
            {
                a.mov(eax, m[b + 8]);
            }

            if (bitness == 64)
            {
                foreach (var b in bases64)
                {
                    a.mov(eax, m[b + 8]);
                }
            }
        }

        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), 0x8000);
        var decoder = Iced.Intel.Decoder.Create(bitness, stream.ToArray(), 0x8000);
        var checkedCount = 0;
        while (decoder.IP < 0x8000 + (ulong)stream.Length)
        {
            var ins = decoder.Decode();
            Assert.Equal((SegReg)(ins.MemorySegment - Register.ES), ActorVm.Hardware.X86.Instructions.FastForms.LeanSegment(ref ins));
            checkedCount++;
        }

        Assert.Equal(bitness == 64 ? 7 * 20 : 7 * 8, checkedCount);
    }
}
