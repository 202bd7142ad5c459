using System.Runtime.CompilerServices;
using Iced.Intel;
using unsafe Handler = delegate*<ActorVm.Hardware.X86.Cpu, ref ActorVm.Hardware.X86.DecodedInstruction, void>;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Specialised handlers for the hottest operand forms, chosen per decoded instruction when a
/// block is decoded: register-register and register-immediate ALU operations and MOVs with a
/// [base + index*scale + disp] address, in 32- and 64-bit widths; shifts by an immediate
/// (FastForms.Shift.cs); branches, calls and the stack (FastForms.Flow.cs); LEA, MOVZX and
/// ALU operations with a memory source (FastForms.Addressing.cs). Each does exactly what the generic
/// handler of its group does for that form (same result, same lazy-flag record), only without
/// decoding the operand kinds again on every execution. Anything else keeps the generic handler.
/// </summary>
internal static unsafe partial class FastForms
{
    /// <summary>A specialised handler for this instruction, or 0 to use the generic one.</summary>
    public static nint Select(in Instruction ins)
    {
        if (ins.HasLockPrefix || ins.HasRepPrefix || ins.HasRepnePrefix)
        {
            return 0;
        }

        var form = SimpleMemory(ins) ? AddressForm(ins) : 0;
        var rr = ins.OpCount == 2 && ins.Op0Kind == OpKind.Register && ins.Op1Kind == OpKind.Register;
        var ri = ins.OpCount == 2 && ins.Op0Kind == OpKind.Register && ins.Op1Kind is OpKind.Immediate32 or OpKind.Immediate8to32 or OpKind.Immediate32to64 or OpKind.Immediate8to64;
        var r = ins.OpCount == 1 && ins.Op0Kind == OpKind.Register;
        if (SelectFlow(ins) is var flow and not 0)
        {
            return flow;
        }

        if (SelectShift(ins) is var shift and not 0)
        {
            return shift;
        }

        if (SelectAddressing(ins) is var addressing and not 0)
        {
            return addressing;
        }

        return ins.Code switch
        {
            Code.Mov_r32_rm32 or Code.Mov_rm32_r32 when rr => H(&MovRR32),
            Code.Mov_r64_rm64 or Code.Mov_rm64_r64 when rr => H(&MovRR64),
            Code.Mov_r32_rm32 when form != 0 => ByForm(form, H(&Load32<Addr32>), H(&Load32<Addr64>)),
            Code.Mov_rm32_r32 when form != 0 => ByForm(form, H(&Store32<Addr32>), H(&Store32<Addr64>)),
            Code.Mov_r64_rm64 when form != 0 => ByForm(form, H(&Load64<Addr32>), H(&Load64<Addr64>)),
            Code.Mov_rm64_r64 when form != 0 => ByForm(form, H(&Store64<Addr32>), H(&Store64<Addr64>)),
            Code.Mov_r32_imm32 => H(&MovRI32),
            Code.Add_r32_rm32 or Code.Add_rm32_r32 when rr => H(&AddRR32),
            Code.Add_r64_rm64 or Code.Add_rm64_r64 when rr => H(&AddRR64),
            Code.Add_rm32_imm32 or Code.Add_rm32_imm8 or Code.Add_EAX_imm32 when ri => H(&AddRI32),
            Code.Add_rm64_imm32 or Code.Add_rm64_imm8 or Code.Add_RAX_imm32 when ri => H(&AddRI64),
            Code.Sub_r32_rm32 or Code.Sub_rm32_r32 when rr => H(&SubRR32),
            Code.Sub_r64_rm64 or Code.Sub_rm64_r64 when rr => H(&SubRR64),
            Code.Sub_rm32_imm32 or Code.Sub_rm32_imm8 or Code.Sub_EAX_imm32 when ri => H(&SubRI32),
            Code.Sub_rm64_imm32 or Code.Sub_rm64_imm8 or Code.Sub_RAX_imm32 when ri => H(&SubRI64),
            Code.Cmp_r32_rm32 or Code.Cmp_rm32_r32 when rr => H(&CmpRR32),
            Code.Cmp_r64_rm64 or Code.Cmp_rm64_r64 when rr => H(&CmpRR64),
            Code.Cmp_rm32_imm32 or Code.Cmp_rm32_imm8 or Code.Cmp_EAX_imm32 when ri => H(&CmpRI32),
            Code.Cmp_rm64_imm32 or Code.Cmp_rm64_imm8 or Code.Cmp_RAX_imm32 when ri => H(&CmpRI64),
            Code.Xor_r32_rm32 or Code.Xor_rm32_r32 when rr => H(&XorRR32),
            Code.Xor_r64_rm64 or Code.Xor_rm64_r64 when rr => H(&XorRR64),
            Code.Xor_rm32_imm32 or Code.Xor_rm32_imm8 or Code.Xor_EAX_imm32 when ri => H(&XorRI32),
            Code.Xor_rm64_imm32 or Code.Xor_rm64_imm8 or Code.Xor_RAX_imm32 when ri => H(&XorRI64),
            Code.And_r64_rm64 or Code.And_rm64_r64 when rr => H(&AndRR64),
            Code.And_rm64_imm32 or Code.And_rm64_imm8 or Code.And_RAX_imm32 when ri => H(&AndRI64),
            Code.Or_rm32_imm32 or Code.Or_rm32_imm8 or Code.Or_EAX_imm32 when ri => H(&OrRI32),
            Code.Or_r64_rm64 or Code.Or_rm64_r64 when rr => H(&OrRR64),
            Code.Or_rm64_imm32 or Code.Or_rm64_imm8 or Code.Or_RAX_imm32 when ri => H(&OrRI64),
            Code.And_r32_rm32 or Code.And_rm32_r32 when rr => H(&AndRR32),
            Code.And_rm32_imm32 or Code.And_rm32_imm8 or Code.And_EAX_imm32 when ri => H(&AndRI32),
            Code.Or_r32_rm32 or Code.Or_rm32_r32 when rr => H(&OrRR32),
            Code.Test_rm32_r32 when rr => H(&TestRR32),
            Code.Test_rm32_imm32 or Code.Test_EAX_imm32 when ri => H(&TestRI32),
            Code.Test_rm64_imm32 or Code.Test_RAX_imm32 when ri => H(&TestRI64),
            Code.Test_rm64_r64 when rr => H(&TestRR64),
            Code.Inc_rm32 or Code.Inc_r32 when r => H(&IncR32),
            Code.Dec_rm32 or Code.Dec_r32 when r => H(&DecR32),
            Code.Inc_rm64 when r => H(&IncR64),
            Code.Dec_rm64 when r => H(&DecR64),
            _ => 0,
        };
    }

    /// <summary>A handler's address, for the selection tables.</summary>
    private static nint H(Handler handler) => (nint)handler;

    /// <summary>A two-operand form with exactly one memory operand.</summary>
    private static bool SimpleMemory(in Instruction ins) =>
        ins.OpCount == 2 && (ins.Op0Kind == OpKind.Memory) != (ins.Op1Kind == OpKind.Memory);

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void MovRR32(Cpu cpu, ref DecodedInstruction op) => cpu.GprAt(op.Reg) = (uint)cpu.GprAt(op.Src);
    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void MovRR64(Cpu cpu, ref DecodedInstruction op) => cpu.GprAt(op.Reg) = cpu.GprAt(op.Src);
    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void MovRI32(Cpu cpu, ref DecodedInstruction op) => cpu.GprAt(op.Reg) = (uint)op.Imm;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Load32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.GprAt(op.Reg) = (uint)cpu.ReadLinear(TAddr.Linear(cpu, ref op), 4);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Store32<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.WriteLinear(TAddr.Linear(cpu, ref op), 4, (uint)cpu.GprAt(op.Src));

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Load64<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.GprAt(op.Reg) = cpu.ReadLinear(TAddr.Linear(cpu, ref op), 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Store64<TAddr>(Cpu cpu, ref DecodedInstruction op) where TAddr : struct, IAddressing =>
        cpu.WriteLinear(TAddr.Linear(cpu, ref op), 8, cpu.GprAt(op.Src));

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AddRR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var b = (uint)cpu.GprAt(op.Src);
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 4, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AddRR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        var b = cpu.GprAt(op.Src);
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 8, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void AddRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var b = (uint)op.Imm;
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 4, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void AddRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        var b = op.Imm;
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 8, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void SubRR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var b = (uint)cpu.GprAt(op.Src);
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void SubRR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        var b = cpu.GprAt(op.Src);
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 8, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void SubRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var b = (uint)op.Imm;
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void SubRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        var b = op.Imm;
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 8, a, b, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void CmpRR32(Cpu cpu, ref DecodedInstruction op)
    {
        var a = (uint)cpu.GprAt(op.Reg);
        var b = (uint)cpu.GprAt(op.Src);
        cpu.SetLazy(FlagOp.Sub, 4, a, b, a - b);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void CmpRR64(Cpu cpu, ref DecodedInstruction op)
    {
        var a = cpu.GprAt(op.Reg);
        var b = cpu.GprAt(op.Src);
        cpu.SetLazy(FlagOp.Sub, 8, a, b, a - b);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void CmpRI32(Cpu cpu, ref DecodedInstruction op)
    {
        var a = (uint)cpu.GprAt(op.Reg);
        var b = (uint)op.Imm;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, a - b);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void CmpRI64(Cpu cpu, ref DecodedInstruction op)
    {
        var a = cpu.GprAt(op.Reg);
        var b = op.Imm;
        cpu.SetLazy(FlagOp.Sub, 8, a, b, a - b);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void XorRR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d ^ (uint)cpu.GprAt(op.Src);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void XorRR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = d ^ cpu.GprAt(op.Src);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void XorRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d ^ (uint)op.Imm;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void XorRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = d ^ op.Imm;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AndRR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = d & cpu.GprAt(op.Src);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AndRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = d & op.Imm;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void OrRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d | (uint)op.Imm;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void OrRR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = d | cpu.GprAt(op.Src);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void OrRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = d | op.Imm;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AndRR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d & (uint)cpu.GprAt(op.Src);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void AndRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d & (uint)op.Imm;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void OrRR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var r = (uint)d | (uint)cpu.GprAt(op.Src);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void TestRR32(Cpu cpu, ref DecodedInstruction op) =>
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, (uint)cpu.GprAt(op.Reg) & (uint)cpu.GprAt(op.Src));

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void TestRI32(Cpu cpu, ref DecodedInstruction op) =>
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, (uint)cpu.GprAt(op.Reg) & (uint)op.Imm);

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void TestRI64(Cpu cpu, ref DecodedInstruction op) =>
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, cpu.GprAt(op.Reg) & op.Imm);

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void TestRR64(Cpu cpu, ref DecodedInstruction op) =>
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, cpu.GprAt(op.Reg) & cpu.GprAt(op.Src));

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void IncR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var r = a + 1;
        d = r;
        cpu.SetLazyKeepCarry(FlagOp.Inc, 4, a, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void DecR32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = (uint)d;
        var r = a - 1;
        d = r;
        cpu.SetLazyKeepCarry(FlagOp.Dec, 4, a, r);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void IncR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        d = a + 1;
        cpu.SetLazyKeepCarry(FlagOp.Inc, 8, a, a + 1);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // also the first half of a fused pair
    private static void DecR64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var a = d;
        d = a - 1;
        cpu.SetLazyKeepCarry(FlagOp.Dec, 8, a, a - 1);
    }
}
