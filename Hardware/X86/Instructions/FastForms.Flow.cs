using System.Runtime.CompilerServices;
using Iced.Intel;
using unsafe Handler = delegate*<ActorVm.Hardware.X86.Cpu, ref ActorVm.Hardware.X86.DecodedInstruction, void>;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Control flow and the stack: Jcc with its condition fixed at decode time (so the lazy-flag
/// evaluation is only the flags that condition reads), JMP/CALL rel, RET near without an
/// immediate, PUSH/POP of a full-width register. Same semantics as <see cref="ControlFlow"/>
/// and <see cref="Stack"/>: Jcc and JMP rel take the decoded target as is, CALL and RET check
/// canonical targets in 64-bit mode, the stack does what <see cref="Cpu.PushSized"/> and
/// <see cref="Cpu.PopSized"/> do for a 32-bit stack and in 64-bit mode (and calls them for a
/// 16-bit one).
/// </summary>
internal static unsafe partial class FastForms
{
    private static readonly nint[] JccByCondition =
    [
        H(&Jo), H(&Jno),
        H(&Jb), H(&Jae),
        H(&Je), H(&Jne),
        H(&Jbe), H(&Ja),
        H(&Js), H(&Jns),
        H(&Jp), H(&Jnp),
        H(&Jl), H(&Jge),
        H(&Jle), H(&Jg),
    ];

    private static nint SelectFlow(in Instruction ins)
    {
        var near = ins.OpCount == 1 && ins.Op0Kind is OpKind.NearBranch32 or OpKind.NearBranch64;
        if (near && ins.FlowControl == FlowControl.ConditionalBranch && ins.Mnemonic is >= Mnemonic.Ja and <= Mnemonic.Js
            && ins.ConditionCode != ConditionCode.None && ins.Mnemonic is not (Mnemonic.Jcxz or Mnemonic.Jecxz or Mnemonic.Jrcxz or Mnemonic.Jmp or Mnemonic.Jmpe or Mnemonic.Jknzd or Mnemonic.Jkzd))
        {
            return JccByCondition[(int)ins.ConditionCode - 1];
        }

        var r = ins.OpCount == 1 && ins.Op0Kind == OpKind.Register;
        return ins.Code switch
        {
            Code.Jmp_rel8_32 or Code.Jmp_rel32_32 or Code.Jmp_rel8_64 or Code.Jmp_rel32_64 when near => H(&JmpRel),
            Code.Call_rel32_32 when near => H(&CallRel32),
            Code.Call_rel32_64 when near => H(&CallRel64),
            Code.Retnd when ins.OpCount == 0 => H(&Ret32),
            Code.Retnq when ins.OpCount == 0 => H(&Ret64),
            Code.Push_r32 when r => H(&PushR32),
            Code.Pop_r32 when r => H(&PopR32),
            Code.Push_r64 when r => H(&PushR64),
            Code.Pop_r64 when r => H(&PopR64),
            _ => 0,
        };
    }

    // The decoded target of a 32-bit branch is already truncated to 32 bits; NearBranch64
    // reads the same stored value for both kinds without NearBranchTarget's switch.
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jo(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(0)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jno(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(1)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jb(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(2)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jae(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(3)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Je(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(4)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jne(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(5)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jbe(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(6)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Ja(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(7)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Js(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(8)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jns(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(9)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jp(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(10)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jnp(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(11)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jl(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(12)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jge(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(13)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jle(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(14)) cpu.Rip = op.Imm; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Jg(Cpu cpu, ref DecodedInstruction op) { if (cpu.Condition(15)) cpu.Rip = op.Imm; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void JmpRel(Cpu cpu, ref DecodedInstruction op) => cpu.Rip = op.Imm;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void CallRel32(Cpu cpu, ref DecodedInstruction op)
    {
        Push32(cpu, (uint)cpu.Rip);
        cpu.Rip = op.Imm;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void CallRel64(Cpu cpu, ref DecodedInstruction op)
    {
        var target = op.Imm;
        if ((ulong)((long)(target << 16) >> 16) != target)
        {
            throw GuestFault.Gp();
        }

        Push64(cpu, cpu.Rip);
        cpu.Rip = target;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Ret32(Cpu cpu, ref DecodedInstruction op) => cpu.Rip = Pop32(cpu);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void Ret64(Cpu cpu, ref DecodedInstruction op)
    {
        var sp = cpu.GprAt(Cpu.RSP);
        var target = Pop64(cpu);
        if ((ulong)((long)(target << 16) >> 16) != target)
        {
            cpu.GprAt(Cpu.RSP) = sp;
            throw GuestFault.Gp();
        }

        cpu.Rip = target;
    }

    /// <summary>
    /// The handler of a RET the block was decoded through to the return address of a CALL in
    /// the same block (<see cref="DecodedInstruction.FusedTarget"/>): the fast RET, or the generic
    /// one when fast forms are off, then the block ends unless it returned there.
    /// </summary>
    public static nint PredictedReturn(in Instruction ret, bool fast) =>
        !fast ? H(&RetPredictedGeneric) : ret.Code == Code.Retnq ? H(&RetPredicted64) : H(&RetPredicted32);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void RetPredicted32(Cpu cpu, ref DecodedInstruction op)
    {
        Ret32(cpu, ref op);
        if (cpu.Rip != op.FusedTarget)
        {
            cpu.BreakBlock();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void RetPredicted64(Cpu cpu, ref DecodedInstruction op)
    {
        Ret64(cpu, ref op);
        if (cpu.Rip != op.FusedTarget)
        {
            cpu.BreakBlock();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void RetPredictedGeneric(Cpu cpu, ref DecodedInstruction op)
    {
        ((delegate*<Cpu, ref Instruction, void>)InstructionTable.Handler(op.Instruction.Code))(cpu, ref op.Instruction);
        if (cpu.Rip != op.FusedTarget)
        {
            cpu.BreakBlock();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void PushR32(Cpu cpu, ref DecodedInstruction op) => Push32(cpu, (uint)cpu.GprAt(op.Reg));

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void PopR32(Cpu cpu, ref DecodedInstruction op)
    {
        var v = Pop32(cpu);
        cpu.GprAt(op.Reg) = v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void PushR64(Cpu cpu, ref DecodedInstruction op) => Push64(cpu, cpu.GprAt(op.Reg));

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void PopR64(Cpu cpu, ref DecodedInstruction op)
    {
        var v = Pop64(cpu);
        cpu.GprAt(op.Reg) = v;
    }

    // The stack with a 32-bit stack pointer (SS.B = 1) or in 64-bit mode, what PushSized and
    // PopSized do for those sizes without their switches; a 16-bit stack takes them. The store
    // or load comes first, so a fault leaves RSP unchanged.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Push32(Cpu cpu, uint value)
    {
        if (cpu.StackSize != 4)
        {
            cpu.PushSized(4, value);
            return;
        }

        ref var rsp = ref cpu.GprAt(Cpu.RSP);
        var sp = (uint)rsp - 4;
        cpu.WriteLinear((uint)(cpu.SegmentBase((int)SegReg.SS) + sp), 4, value);
        rsp = sp;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Pop32(Cpu cpu)
    {
        if (cpu.StackSize != 4)
        {
            return (uint)cpu.PopSized(4);
        }

        ref var rsp = ref cpu.GprAt(Cpu.RSP);
        var sp = (uint)rsp;
        var value = (uint)cpu.ReadLinear((uint)(cpu.SegmentBase((int)SegReg.SS) + sp), 4);
        rsp = sp + 4;
        return value;
    }

    // In 64-bit mode the stack is always 64-bit and SS has no base; a non-canonical address is #SS(0).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Push64(Cpu cpu, ulong value)
    {
        ref var rsp = ref cpu.GprAt(Cpu.RSP);
        var sp = rsp - 8;
        cpu.WriteLinear(CanonicalStack(sp), 8, value);
        rsp = sp;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Pop64(Cpu cpu)
    {
        ref var rsp = ref cpu.GprAt(Cpu.RSP);
        var sp = rsp;
        var value = cpu.ReadLinear(CanonicalStack(sp), 8);
        rsp = sp + 8;
        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong CanonicalStack(ulong la) =>
        (ulong)((long)(la << 16) >> 16) == la ? la : throw new GuestFault(Vector.SS, 0);
}
