using System.Runtime.CompilerServices;
using Iced.Intel;
using unsafe Handler = delegate*<ActorVm.Hardware.X86.Cpu, ref ActorVm.Hardware.X86.DecodedInstruction, void>;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// How a fast form computes a [base + index*scale + disp] address from the pre-decoded record:
/// one implementation per execution mode, chosen when the block is decoded (a block only runs in
/// the mode it was decoded for), so the handlers carry no mode test. The address is what
/// <see cref="Cpu.EffectiveAddress"/> and <see cref="Cpu.Linear"/> compute.
/// </summary>
internal interface IAddressing
{
    /// <summary>The effective address, wrapped to the address size.</summary>
    static abstract ulong Ea(Cpu cpu, ref DecodedInstruction op);

    /// <summary>The linear address: segment base added, canonical-checked in 64-bit mode.</summary>
    static abstract ulong Linear(Cpu cpu, ref DecodedInstruction op);
}

/// <summary>32-bit addresses outside 64-bit mode: base + offset wraps at 4 GiB.</summary>
internal readonly struct Addr32 : IAddressing
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Ea(Cpu cpu, ref DecodedInstruction op)
    {
        var ea = (uint)cpu.GprAt(op.Base) + (uint)op.Disp;
        if (op.Index != DecodedInstruction.NoIndex)
        {
            ea += (uint)cpu.GprAt(op.Index) << op.Scale;
        }

        return ea;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Linear(Cpu cpu, ref DecodedInstruction op) => (uint)(cpu.SegmentBase(op.Segment) + Ea(cpu, ref op));
}

/// <summary>64-bit addresses in 64-bit mode: only FS and GS add a base; non-canonical is #GP, or #SS for SS (SDM vol. 1 3.3.7.1).</summary>
internal readonly struct Addr64 : IAddressing
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Ea(Cpu cpu, ref DecodedInstruction op)
    {
        var ea = cpu.GprAt(op.Base) + op.Disp;
        if (op.Index != DecodedInstruction.NoIndex)
        {
            ea += cpu.GprAt(op.Index) << op.Scale;
        }

        return ea;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Linear(Cpu cpu, ref DecodedInstruction op)
    {
        var la = Ea(cpu, ref op);
        if (op.Segment >= (byte)SegReg.FS)
        {
            la += cpu.SegmentBase(op.Segment);
        }

        if ((ulong)((long)(la << 16) >> 16) != la)
        {
            throw op.Segment == (byte)SegReg.SS ? new GuestFault(Vector.SS, 0) : GuestFault.Gp();
        }

        return la;
    }
}

/// <summary>
/// LEA, MOVZX from memory or a register, and ADD/SUB/CMP/AND/OR/XOR of a register with a memory
/// source, on the addressing of <see cref="IAddressing"/>.
/// </summary>
internal static unsafe partial class FastForms
{
    private static bool IsGpr32(Register r) => r is >= Register.EAX and <= Register.R15D;
    private static bool IsGpr64(Register r) => r is >= Register.RAX and <= Register.R15;

    /// <summary>
    /// Which addressing a memory operand can use: 1 for <see cref="Addr32"/> (a 32-bit base and
    /// index outside 64-bit mode), 2 for <see cref="Addr64"/> (64-bit base and index in 64-bit
    /// mode), 0 for anything else (RIP-relative, 16-bit or address-size-prefixed forms keep the
    /// generic handlers).
    /// </summary>
    private static int AddressForm(in Instruction ins)
    {
        if (ins.IsIPRelativeMemoryOperand)
        {
            return 0;
        }

        if (ins.CodeSize != CodeSize.Code64)
        {
            return IsGpr32(ins.MemoryBase) && (ins.MemoryIndex == Register.None || IsGpr32(ins.MemoryIndex)) ? 1 : 0;
        }

        return IsGpr64(ins.MemoryBase) && (ins.MemoryIndex == Register.None || IsGpr64(ins.MemoryIndex)) ? 2 : 0;
    }

    private static nint ByForm(int form, nint a32, nint a64) => form switch { 1 => a32, 2 => a64, _ => 0 };

    /// <summary>
    /// The segment of a memory operand: the override prefix, else SS for an rSP or rBP base and
    /// DS otherwise (SDM vol. 1 3.7.4.1), what Iced's MemorySegment computes (pre-decoded once).
    /// </summary>
    internal static SegReg LeanSegment(ref Instruction ins)
    {
        var prefix = ins.SegmentPrefix;
        if (prefix != Register.None)
        {
            return (SegReg)(prefix - Register.ES);
        }

        return ins.MemoryBase is Register.ESP or Register.EBP or Register.RSP or Register.RBP ? SegReg.SS : SegReg.DS;
    }

    private static nint SelectAddressing(in Instruction ins)
    {
        if (ins.OpCount != 2 || ins.Op0Kind != OpKind.Register)
        {
            return 0;
        }

        var form = ins.Op1Kind == OpKind.Memory ? AddressForm(ins) : 0;
        var mem = form != 0;
        var reg = ins.Op1Kind == OpKind.Register;
        return ins.Code switch
        {
            Code.Lea_r32_m when mem => ByForm(form, H(&Lea32<Addr32>), H(&Lea32<Addr64>)),
            Code.Lea_r64_m when mem => ByForm(form, 0, H(&Lea64<Addr64>)),
            Code.Movzx_r32_rm8 or Code.Movzx_r64_rm8 when mem => ByForm(form, H(&MovzxLoad8<Addr32>), H(&MovzxLoad8<Addr64>)),
            Code.Movzx_r32_rm16 or Code.Movzx_r64_rm16 when mem => ByForm(form, H(&MovzxLoad16<Addr32>), H(&MovzxLoad16<Addr64>)),
            Code.Movzx_r32_rm8 or Code.Movzx_r32_rm16 or Code.Movzx_r64_rm8 or Code.Movzx_r64_rm16 when reg => H(&MovzxReg),
            Code.Add_r32_rm32 when mem => ByForm(form, H(&AddLoad32<Addr32>), H(&AddLoad32<Addr64>)),
            Code.Add_r64_rm64 when mem => ByForm(form, 0, H(&AddLoad64<Addr64>)),
            Code.Sub_r32_rm32 when mem => ByForm(form, H(&SubLoad32<Addr32>), H(&SubLoad32<Addr64>)),
            Code.Cmp_r32_rm32 when mem => ByForm(form, H(&CmpLoad32<Addr32>), H(&CmpLoad32<Addr64>)),
            Code.Cmp_r64_rm64 when mem => ByForm(form, 0, H(&CmpLoad64<Addr64>)),
            Code.And_r32_rm32 when mem => ByForm(form, H(&AndLoad32<Addr32>), H(&AndLoad32<Addr64>)),
            Code.Or_r32_rm32 when mem => ByForm(form, H(&OrLoad32<Addr32>), H(&OrLoad32<Addr64>)),
            Code.Xor_r32_rm32 when mem => ByForm(form, H(&XorLoad32<Addr32>), H(&XorLoad32<Addr64>)),
            _ => 0,
        };
    }

    // LEA does no memory access: the effective address, truncated to the operand size.
    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Lea32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.GprAt(op.Reg) = (uint)TAddr.Ea(cpu, ref op);

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Lea64<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.GprAt(op.Reg) = TAddr.Ea(cpu, ref op);

    // MOVZX into a 32-bit register zero-extends to 64 bits like any 32-bit write (SDM vol. 1 3.4.1.1).
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void MovzxLoad8<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.GprAt(op.Reg) = cpu.ReadLinear(TAddr.Linear(cpu, ref op), 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void MovzxLoad16<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.GprAt(op.Reg) = cpu.ReadLinear(TAddr.Linear(cpu, ref op), 2);

    // The source may be a high-byte register (AH..BH): the generic register read knows those.
    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void MovzxReg(Cpu cpu, ref DecodedInstruction op) =>
        cpu.WriteReg(op.Instruction.Op0Register, cpu.ReadReg(op.Instruction.Op1Register));

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AddLoad32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 4, a, b, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AddLoad64<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = cpu.ReadLinear(TAddr.Linear(cpu, ref op), 8);
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 8, a, b, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void SubLoad32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void CmpLoad32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);
        var a = (uint)cpu.GprAt(op.Reg);
        cpu.SetLazy(FlagOp.Sub, 4, a, b, a - b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void CmpLoad64<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = cpu.ReadLinear(TAddr.Linear(cpu, ref op), 8);
        var a = cpu.GprAt(op.Reg);
        cpu.SetLazy(FlagOp.Sub, 8, a, b, a - b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AndLoad32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d & b;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void OrLoad32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d | b;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void XorLoad32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing
    {
        var b = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d ^ b;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }
}
