using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Near Jcc, JMP, CALL, RET, LOOP/LOOPE/LOOPNE, JCXZ/JECXZ/JRCXZ (SDM vol. 2). Iced computes
/// the branch target already truncated to the operand size (16-bit IP wraps, 32-bit EIP).
/// </summary>
internal static unsafe class ControlFlow
{
    /// <summary>Counter-register width (bytes) of each LOOP/JrCXZ code; operand size (bytes) of each near CALL/RET code.</summary>
    private static readonly byte[] Width = new byte[(int)Enum.GetValues<Code>().Max() + 1];

    public static void Register(InstructionTable.Builder b)
    {
        foreach (var code in Enum.GetValues<Code>())
        {
            var m = code.Mnemonic();
            var name = code.ToString();
            if (code.Encoding() != EncodingKind.Legacy)
            {
                continue;
            }

            if (code.ConditionCode() != ConditionCode.None && code.IsJccShortOrNear())
            {
                b.Add(&Jcc, code);
            }
            else if (m is Mnemonic.Loop or Mnemonic.Loope or Mnemonic.Loopne or Mnemonic.Jcxz or Mnemonic.Jecxz or Mnemonic.Jrcxz)
            {
                Width[(int)code] = (byte)(name.EndsWith("_RCX", StringComparison.Ordinal) || m == Mnemonic.Jrcxz ? 8
                    : name.EndsWith("_ECX", StringComparison.Ordinal) || m == Mnemonic.Jecxz ? 4 : 2);
                b.Add(m switch
                {
                    Mnemonic.Loop => &Loop,
                    Mnemonic.Loope => &Loope,
                    Mnemonic.Loopne => &Loopne,
                    _ => &Jrcxz,
                }, code);
            }
            else if (m == Mnemonic.Ret)
            {
                Width[(int)code] = (byte)(name.StartsWith("Retnw", StringComparison.Ordinal) ? 2 : name.StartsWith("Retnd", StringComparison.Ordinal) ? 4 : 8);
                b.Add(&Ret, code);
            }
        }

        b.Add(&JmpRel, Code.Jmp_rel8_16, Code.Jmp_rel8_32, Code.Jmp_rel8_64, Code.Jmp_rel16, Code.Jmp_rel32_32, Code.Jmp_rel32_64);
        b.Add(&JmpRm, Code.Jmp_rm16, Code.Jmp_rm32, Code.Jmp_rm64);
        Width[(int)Code.Call_rel16] = 2;
        Width[(int)Code.Call_rel32_32] = 4;
        Width[(int)Code.Call_rel32_64] = 8;
        b.Add(&CallRel, Code.Call_rel16, Code.Call_rel32_32, Code.Call_rel32_64);
        b.Add(&CallRm, Code.Call_rm16, Code.Call_rm32, Code.Call_rm64);
    }

    private static void Jcc(Cpu cpu, ref Instruction ins)
    {
        if (cpu.Condition((int)ins.ConditionCode - 1))
        {
            cpu.Rip = ins.NearBranchTarget;
        }
    }

    /// <summary>In 64-bit mode a non-canonical near-branch target faults at the branch (#GP(0), SDM JMP/CALL/RET).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckTarget(Cpu cpu, ulong target)
    {
        if (cpu.Is64BitMode && (ulong)((long)(target << 16) >> 16) != target)
        {
            throw GuestFault.Gp();
        }
    }

    private static void JmpRel(Cpu cpu, ref Instruction ins) => cpu.Rip = ins.NearBranchTarget;

    private static void JmpRm(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var target = cpu.ReadOp(ref ins, 0, size);
        CheckTarget(cpu, target);
        cpu.Rip = target;
    }

    private static void CallRel(Cpu cpu, ref Instruction ins)
    {
        var target = ins.NearBranchTarget;
        CheckTarget(cpu, target);
        cpu.PushSized(Width[(int)ins.Code], cpu.Rip);
        cpu.Rip = target;
    }

    private static void CallRm(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var target = cpu.ReadOp(ref ins, 0, size);
        CheckTarget(cpu, target);
        cpu.PushSized(size, cpu.Rip);
        cpu.Rip = target;
    }

    private static void Ret(Cpu cpu, ref Instruction ins)
    {
        var sp = cpu.Gpr[Cpu.RSP];
        var target = cpu.PopSized(Width[(int)ins.Code]);
        if (cpu.Is64BitMode && (ulong)((long)(target << 16) >> 16) != target)
        {
            cpu.Gpr[Cpu.RSP] = sp;
            throw GuestFault.Gp();
        }

        if (ins.OpCount == 1)
        {
            AddStack(cpu, ins.Immediate16);
        }

        cpu.Rip = target;
    }

    /// <summary>Adds to rSP with the stack-address size (SP wraps within 16 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void AddStack(Cpu cpu, ulong delta)
    {
        var sp = cpu.Gpr[Cpu.RSP] + delta;
        cpu.Gpr[Cpu.RSP] = cpu.StackSize switch
        {
            2 => (cpu.Gpr[Cpu.RSP] & ~0xFFFFUL) | (ushort)sp,
            4 => (uint)sp,
            _ => sp,
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool DecrementCounter(Cpu cpu, ref Instruction ins)
    {
        var w = Width[(int)ins.Code];
        var c = (cpu.ReadGpr(Cpu.RCX, w) - 1) & Cpu.SizeMask(w);
        cpu.WriteGpr(Cpu.RCX, w, c);
        return c != 0;
    }

    private static void Loop(Cpu cpu, ref Instruction ins)
    {
        if (DecrementCounter(cpu, ref ins))
        {
            cpu.Rip = ins.NearBranchTarget;
        }
    }

    private static void Loope(Cpu cpu, ref Instruction ins)
    {
        if (DecrementCounter(cpu, ref ins) && cpu.ZF)
        {
            cpu.Rip = ins.NearBranchTarget;
        }
    }

    private static void Loopne(Cpu cpu, ref Instruction ins)
    {
        if (DecrementCounter(cpu, ref ins) && !cpu.ZF)
        {
            cpu.Rip = ins.NearBranchTarget;
        }
    }

    private static void Jrcxz(Cpu cpu, ref Instruction ins)
    {
        if (cpu.ReadGpr(Cpu.RCX, Width[(int)ins.Code]) == 0)
        {
            cpu.Rip = ins.NearBranchTarget;
        }
    }
}
