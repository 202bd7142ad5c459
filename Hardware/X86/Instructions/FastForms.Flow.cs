using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Control flow and the stack: Jcc with its condition fixed at decode time (so the lazy-flag
/// evaluation is only the flags that condition reads), JMP/CALL rel, RET near without an
/// immediate, PUSH/POP of a full-width register. Same semantics as <see cref="ControlFlow"/>
/// and <see cref="Stack"/>: Jcc and JMP rel take the decoded target as is, CALL and RET check
/// canonical targets in 64-bit mode, the stack goes through <see cref="Cpu.PushSized"/> and
/// <see cref="Cpu.PopSized"/> (so SS's size and faults are the generic ones).
/// </summary>
internal static unsafe partial class FastForms
{
    private static readonly nint[] JccByCondition =
    [
        (nint)(delegate*<Cpu, ref Instruction, void>)&Jo, (nint)(delegate*<Cpu, ref Instruction, void>)&Jno,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Jb, (nint)(delegate*<Cpu, ref Instruction, void>)&Jae,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Je, (nint)(delegate*<Cpu, ref Instruction, void>)&Jne,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Jbe, (nint)(delegate*<Cpu, ref Instruction, void>)&Ja,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Js, (nint)(delegate*<Cpu, ref Instruction, void>)&Jns,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Jp, (nint)(delegate*<Cpu, ref Instruction, void>)&Jnp,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Jl, (nint)(delegate*<Cpu, ref Instruction, void>)&Jge,
        (nint)(delegate*<Cpu, ref Instruction, void>)&Jle, (nint)(delegate*<Cpu, ref Instruction, void>)&Jg,
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
            Code.Jmp_rel8_32 or Code.Jmp_rel32_32 or Code.Jmp_rel8_64 or Code.Jmp_rel32_64 when near => (nint)(delegate*<Cpu, ref Instruction, void>)&JmpRel,
            Code.Call_rel32_32 when near => (nint)(delegate*<Cpu, ref Instruction, void>)&CallRel32,
            Code.Call_rel32_64 when near => (nint)(delegate*<Cpu, ref Instruction, void>)&CallRel64,
            Code.Retnd when ins.OpCount == 0 => (nint)(delegate*<Cpu, ref Instruction, void>)&Ret32,
            Code.Retnq when ins.OpCount == 0 => (nint)(delegate*<Cpu, ref Instruction, void>)&Ret64,
            Code.Push_r32 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&PushR32,
            Code.Pop_r32 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&PopR32,
            Code.Push_r64 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&PushR64,
            Code.Pop_r64 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&PopR64,
            _ => 0,
        };
    }

    // The decoded target of a 32-bit branch is already truncated to 32 bits; NearBranch64
    // reads the same stored value for both kinds without NearBranchTarget's switch.
    private static void Jo(Cpu cpu, ref Instruction ins) { if (cpu.Condition(0)) cpu.Rip = ins.NearBranch64; }
    private static void Jno(Cpu cpu, ref Instruction ins) { if (cpu.Condition(1)) cpu.Rip = ins.NearBranch64; }
    private static void Jb(Cpu cpu, ref Instruction ins) { if (cpu.Condition(2)) cpu.Rip = ins.NearBranch64; }
    private static void Jae(Cpu cpu, ref Instruction ins) { if (cpu.Condition(3)) cpu.Rip = ins.NearBranch64; }
    private static void Je(Cpu cpu, ref Instruction ins) { if (cpu.Condition(4)) cpu.Rip = ins.NearBranch64; }
    private static void Jne(Cpu cpu, ref Instruction ins) { if (cpu.Condition(5)) cpu.Rip = ins.NearBranch64; }
    private static void Jbe(Cpu cpu, ref Instruction ins) { if (cpu.Condition(6)) cpu.Rip = ins.NearBranch64; }
    private static void Ja(Cpu cpu, ref Instruction ins) { if (cpu.Condition(7)) cpu.Rip = ins.NearBranch64; }
    private static void Js(Cpu cpu, ref Instruction ins) { if (cpu.Condition(8)) cpu.Rip = ins.NearBranch64; }
    private static void Jns(Cpu cpu, ref Instruction ins) { if (cpu.Condition(9)) cpu.Rip = ins.NearBranch64; }
    private static void Jp(Cpu cpu, ref Instruction ins) { if (cpu.Condition(10)) cpu.Rip = ins.NearBranch64; }
    private static void Jnp(Cpu cpu, ref Instruction ins) { if (cpu.Condition(11)) cpu.Rip = ins.NearBranch64; }
    private static void Jl(Cpu cpu, ref Instruction ins) { if (cpu.Condition(12)) cpu.Rip = ins.NearBranch64; }
    private static void Jge(Cpu cpu, ref Instruction ins) { if (cpu.Condition(13)) cpu.Rip = ins.NearBranch64; }
    private static void Jle(Cpu cpu, ref Instruction ins) { if (cpu.Condition(14)) cpu.Rip = ins.NearBranch64; }
    private static void Jg(Cpu cpu, ref Instruction ins) { if (cpu.Condition(15)) cpu.Rip = ins.NearBranch64; }

    private static void JmpRel(Cpu cpu, ref Instruction ins) => cpu.Rip = ins.NearBranch64;

    private static void CallRel32(Cpu cpu, ref Instruction ins)
    {
        cpu.PushSized(4, cpu.Rip);
        cpu.Rip = ins.NearBranch64;
    }

    private static void CallRel64(Cpu cpu, ref Instruction ins)
    {
        var target = ins.NearBranch64;
        if ((ulong)((long)(target << 16) >> 16) != target)
        {
            throw GuestFault.Gp();
        }

        cpu.PushSized(8, cpu.Rip);
        cpu.Rip = target;
    }

    private static void Ret32(Cpu cpu, ref Instruction ins) => cpu.Rip = cpu.PopSized(4);

    private static void Ret64(Cpu cpu, ref Instruction ins)
    {
        var sp = cpu.Gpr[Cpu.RSP];
        var target = cpu.PopSized(8);
        if ((ulong)((long)(target << 16) >> 16) != target)
        {
            cpu.Gpr[Cpu.RSP] = sp;
            throw GuestFault.Gp();
        }

        cpu.Rip = target;
    }

    private static void PushR32(Cpu cpu, ref Instruction ins) => cpu.PushSized(4, (uint)cpu.Gpr[R32(ins.Op0Register)]);
    private static void PopR32(Cpu cpu, ref Instruction ins)
    {
        var v = (uint)cpu.PopSized(4);
        cpu.Gpr[R32(ins.Op0Register)] = v;
    }

    private static void PushR64(Cpu cpu, ref Instruction ins) => cpu.PushSized(8, cpu.Gpr[R64(ins.Op0Register)]);
    private static void PopR64(Cpu cpu, ref Instruction ins)
    {
        var v = cpu.PopSized(8);
        cpu.Gpr[R64(ins.Op0Register)] = v;
    }
}
