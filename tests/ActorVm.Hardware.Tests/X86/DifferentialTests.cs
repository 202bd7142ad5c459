using System.Reflection;
using ActorVm.Hardware.X86;
using CsCheck;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Differential tests: each instruction form runs natively on the host (x86-64) and in the
/// interpreter on the same random RAX/RBX/RCX/RDX/flags, and the registers and the flags the SDM
/// defines for that instruction (and those inputs) must agree. The host of record is an AMD
/// EPYC; flags the SDM leaves undefined are masked rather than matched to one vendor.
/// </summary>
public sealed unsafe class DifferentialTests : IDisposable
{
    private const int Iterations = 2000;
    private const ulong All = Rflags.Status;
    private const ulong Szpc = Rflags.SF | Rflags.ZF | Rflags.PF | Rflags.CF;

    private readonly CpuHarness _h = CpuHarness.Create(64);

    public void Dispose() => _h.Dispose();

    public static TheoryData<string, int> Cases(string[] ops, int[] widths)
    {
        var d = new TheoryData<string, int>();
        foreach (var op in ops)
        {
            foreach (var w in widths)
            {
                d.Add(op, w);
            }
        }

        return d;
    }

    public static TheoryData<string, int> Alu => Cases(["add", "adc", "sub", "sbb", "cmp", "and", "or", "xor", "test", "xchg", "xadd", "cmpxchg"], [1, 2, 4, 8]);

    public static TheoryData<string, int> Unary => Cases(["neg", "not", "inc", "dec", "mul", "imul", "bswap"], [1, 2, 4, 8]);

    public static TheoryData<string, int> Shifts => Cases(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"], [1, 2, 4, 8]);

    public static TheoryData<string, int> Wide => Cases(["shld", "shrd", "imul2", "imul3", "bt", "bts", "btr", "btc", "bsf", "bsr", "popcnt", "lzcnt", "tzcnt", "cmovz", "cmovl", "cmovbe"], [2, 4, 8]);

    [Theory]
    [MemberData(nameof(Alu))]
    public void TwoOperandAlu(string op, int width)
    {
        var code = op == "cmpxchg" ? Emit(op, width, B(width), D(width)) : Emit(op, width, A(width), B(width));
        Compare(op, width, code, _ => All & (op is "and" or "or" or "xor" or "test" ? ~Rflags.AF : All));
    }

    [Theory]
    [MemberData(nameof(Unary))]
    public void OneOperand(string op, int width)
    {
        if (op == "bswap" && width < 4)
        {
            return; // 8-bit BSWAP does not exist; the 16-bit form is undefined.
        }

        var operand = op is "mul" or "imul" ? B(width) : A(width);
        Compare(op, width, Emit(op, width, operand), _ => op switch
        {
            "mul" or "imul" => Rflags.CF | Rflags.OF,
            "not" or "bswap" => All,
            _ => All,
        });
    }

    [Theory]
    [MemberData(nameof(Shifts))]
    public void ShiftAndRotateByCl(string op, int width)
    {
        var bits = width * 8;
        Compare(op, width, Emit(op, width, A(width), cl), s =>
        {
            var count = (int)(s.Rcx & (width == 8 ? 63UL : 31UL));
            if (count == 0)
            {
                return All;
            }

            var of = count == 1 ? Rflags.OF : 0;
            return op switch
            {
                "shl" or "shr" => Rflags.SF | Rflags.ZF | Rflags.PF | (count <= bits ? Rflags.CF : 0) | of,
                "sar" => Szpc | of,
                _ => Rflags.CF | of,
            };
        });
    }

    [Theory]
    [MemberData(nameof(Wide))]
    public void SixteenToSixtyFourBitForms(string op, int width)
    {
        if (op is "popcnt" or "lzcnt" or "tzcnt" && !(System.Runtime.Intrinsics.X86.Popcnt.IsSupported && System.Runtime.Intrinsics.X86.Lzcnt.IsSupported && System.Runtime.Intrinsics.X86.Bmi1.IsSupported))
        {
            return;
        }

        var bits = width * 8;
        switch (op)
        {
            case "shld" or "shrd":
                Compare(op, width, Emit(op, width, A(width), B(width), cl), s =>
                {
                    var count = (int)(s.Rcx & (width == 8 ? 63UL : 31UL));
                    return count == 0 ? All : Szpc | (count == 1 ? Rflags.OF : 0);
                }, s => (int)(s.Rcx & 31) <= bits);
                break;
            case "imul2":
                Compare(op, width, Emit("imul", width, A(width), B(width)), _ => Rflags.CF | Rflags.OF);
                break;
            case "imul3":
                Compare(op, width, Emit("imul", width, A(width), B(width), width == 2 ? (object)(short)-77 : -77), _ => Rflags.CF | Rflags.OF);
                break;
            case "bt" or "bts" or "btr" or "btc":
                Compare(op, width, Emit(op, width, A(width), B(width)), _ => Rflags.CF);
                break;
            case "bsf" or "bsr":
                Compare(op, width, Emit(op, width, A(width), B(width)), _ => Rflags.ZF);
                break;
            case "lzcnt" or "tzcnt":
                Compare(op, width, Emit(op, width, A(width), B(width)), _ => Rflags.ZF | Rflags.CF);
                break;
            default:
                Compare(op, width, Emit(op, width, A(width), B(width)), _ => All);
                break;
        }
    }

    public static TheoryData<string, int> Bmi1 => Cases(["andn", "bextr", "blsi", "blsmsk", "blsr"], [4, 8]);

    [Theory]
    [MemberData(nameof(Bmi1))]
    public void Bmi1Forms(string op, int width)
    {
        if (!System.Runtime.Intrinsics.X86.Bmi1.IsSupported)
        {
            return;
        }

        var code = op is "andn" or "bextr" ? Emit(op, width, A(width), B(width), D(width)) : Emit(op, width, A(width), B(width));
        Compare(op, width, code, _ => op switch
        {
            "bextr" => Rflags.ZF | Rflags.CF | Rflags.OF,
            _ => Rflags.ZF | Rflags.SF | Rflags.CF | Rflags.OF,
        });
    }

    private static object A(int w) => w switch { 1 => al, 2 => ax, 4 => eax, _ => rax };

    private static object D(int w) => w switch { 1 => dl, 2 => dx, 4 => edx, _ => rdx };

    private static object B(int w) => w switch { 1 => bl, 2 => bx, 4 => ebx, _ => rbx };

    /// <summary>Assembles <c>op operands</c> with Iced's Assembler (method chosen by name and operand types).</summary>
    private static byte[] Emit(string op, int width, params object[] operands)
    {
        var types = operands.Select(o => o.GetType()).ToArray();
        var method = typeof(Assembler).GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .First(m => m.Name == op && m.GetParameters().Select(p => p.ParameterType).SequenceEqual(types));
        var asm = new Assembler(64);
        method.Invoke(asm, operands);
        var w = new NativeCode.BytesWriter();
        asm.Assemble(w, 0);
        return w.ToArray();
    }

    private static readonly Gen<ulong> Operand = Gen.Frequency(
        (6, Gen.ULong),
        (1, Gen.OneOf(new ulong[] { 0UL, 1UL, 0x7FUL, 0x80UL, 0xFFUL, 0x7FFFUL, 0x8000UL, 0xFFFFUL, 0x7FFFFFFFUL, 0x80000000UL, 0xFFFFFFFFUL, long.MaxValue, 0x8000000000000000UL, ulong.MaxValue })),
        (1, Gen.Int[0, 70].Select(i => (ulong)i)));

    private static readonly Gen<NativeCode.NativeState> States =
        Gen.Select(Operand, Operand, Gen.Frequency((3, Gen.Int[0, 70].Select(i => (ulong)i)), (1, Gen.ULong)), Operand, Gen.ULong,
            (a, b, c, d, f) => new NativeCode.NativeState { Rax = a, Rbx = b, Rcx = c, Rdx = d, Flags = (f & Rflags.Status) | 0x202 });

    private void Compare(string op, int width, byte[] code, Func<NativeCode.NativeState, ulong> definedFlags, Func<NativeCode.NativeState, bool>? resultDefined = null)
    {
        Assert.True(NativeCode.IsSupported, "differential tests need an x86-64 Linux host");
        var native = NativeCode.Compile(code);
        _h.LoadBytes(CpuHarness.CodeBase, [.. code, 0xF4]);
        _h.Cpu.FlushDecodeCache();
        var text = new Decoder64(code).Text;
        States.Sample(s =>
        {
            var expected = s;
            native(&expected);

            var cpu = _h.Cpu;
            if (cpu.HasPendingInstruction)
            {
                cpu.AbandonPendingInstruction(); // the HLT of the previous sample
            }

            cpu.Gpr[Cpu.RAX] = s.Rax;
            cpu.Gpr[Cpu.RBX] = s.Rbx;
            cpu.Gpr[Cpu.RCX] = s.Rcx;
            cpu.Gpr[Cpu.RDX] = s.Rdx;
            cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;
            cpu.SetFlagsRaw(s.Flags);
            cpu.Rip = CpuHarness.CodeBase;
            var exit = _h.Run(100);
            Assert.Equal(ExitReason.Hlt, exit.Reason);
            Assert.Equal(CpuHarness.CodeBase + (ulong)code.Length, cpu.Rip);

            var where = $"{text} (w{width}) rax={s.Rax:x} rbx={s.Rbx:x} rcx={s.Rcx:x} rdx={s.Rdx:x} fl={s.Flags:x}";
            if (resultDefined?.Invoke(s) ?? true)
            {
                Assert.True(expected.Rax == cpu.Gpr[Cpu.RAX], $"{where}: rax native {expected.Rax:x} interp {cpu.Gpr[Cpu.RAX]:x}");
                Assert.True(expected.Rbx == cpu.Gpr[Cpu.RBX], $"{where}: rbx native {expected.Rbx:x} interp {cpu.Gpr[Cpu.RBX]:x}");
                Assert.True(expected.Rdx == cpu.Gpr[Cpu.RDX], $"{where}: rdx native {expected.Rdx:x} interp {cpu.Gpr[Cpu.RDX]:x}");
                var mask = definedFlags(s);
                var nf = expected.Flags & mask;
                var jf = cpu.Flags & mask;
                Assert.True(nf == jf, $"{where}: flags (mask {mask:x}) native {nf:x} interp {jf:x}");
            }
        }, iter: Iterations, threads: 1, seed: null);
    }

    /// <summary>Iced disassembly for messages.</summary>
    private readonly struct Decoder64(byte[] code)
    {
        public string Text
        {
            get
            {
                var d = Decoder.Create(64, new ByteArrayCodeReader(code));
                d.Decode(out var ins);
                return ins.ToString();
            }
        }
    }
}
