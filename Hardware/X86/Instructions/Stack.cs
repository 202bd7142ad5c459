using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// PUSH/POP (register, r/m, immediate), PUSHA/POPA, ENTER/LEAVE, PUSHF/POPF (SDM vol. 2).
/// PUSH/POP of segment registers live with the segment instructions.
/// </summary>
internal static unsafe class Stack
{
    /// <summary>Operand size (bytes) of each PUSH imm / PUSHF / POPF / ENTER / LEAVE / PUSHA / POPA code.</summary>
    private static readonly byte[] Width = new byte[(int)Enum.GetValues<Code>().Max() + 1];

    public static void Register(InstructionTable.Builder b)
    {
        Set(2, Code.Push_imm16, Code.Pushw_imm8, Code.Pushfw, Code.Popfw, Code.Enterw_imm16_imm8, Code.Leavew, Code.Pushaw, Code.Popaw);
        Set(4, Code.Pushd_imm32, Code.Pushd_imm8, Code.Pushfd, Code.Popfd, Code.Enterd_imm16_imm8, Code.Leaved, Code.Pushad, Code.Popad);
        Set(8, Code.Pushq_imm32, Code.Pushq_imm8, Code.Pushfq, Code.Popfq, Code.Enterq_imm16_imm8, Code.Leaveq);
        b.Add(&PushReg, Code.Push_r16, Code.Push_r32, Code.Push_r64);
        b.Add(&PopReg, Code.Pop_r16, Code.Pop_r32, Code.Pop_r64);
        b.Add(&PushRm, Code.Push_rm16, Code.Push_rm32, Code.Push_rm64);
        b.Add(&PopRm, Code.Pop_rm16, Code.Pop_rm32, Code.Pop_rm64);
        b.Add(&PushImm, Code.Push_imm16, Code.Pushw_imm8, Code.Pushd_imm32, Code.Pushd_imm8, Code.Pushq_imm32, Code.Pushq_imm8);
        b.Add(&Pusha, Code.Pushaw, Code.Pushad);
        b.Add(&Popa, Code.Popaw, Code.Popad);
        b.Add(&Enter, Code.Enterw_imm16_imm8, Code.Enterd_imm16_imm8, Code.Enterq_imm16_imm8);
        b.Add(&Leave, Code.Leavew, Code.Leaved, Code.Leaveq);
        b.Add(&Pushf, Code.Pushfw, Code.Pushfd, Code.Pushfq);
        b.Add(&Popf, Code.Popfw, Code.Popfd, Code.Popfq);
    }

    private static void Set(byte size, params ReadOnlySpan<Code> codes)
    {
        foreach (var c in codes)
        {
            Width[(int)c] = size;
        }
    }

    private static void PushReg(Cpu cpu, ref Instruction ins)
    {
        var r = ins.Op0Register;
        cpu.PushSized(Cpu.RegisterWidth(r), cpu.ReadReg(r));
    }

    private static void PopReg(Cpu cpu, ref Instruction ins)
    {
        var r = ins.Op0Register;
        cpu.WriteReg(r, cpu.PopSized(Cpu.RegisterWidth(r)));
    }

    private static void PushRm(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        cpu.PushSized(size, cpu.ReadOp(ref ins, 0, size));
    }

    /// <summary>POP r/m: an rSP-based destination address is computed after the increment (SDM POP); a faulting store restores rSP.</summary>
    private static void PopRm(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var oldSp = cpu.Gpr[Cpu.RSP];
        var value = cpu.PopSized(size);
        try
        {
            cpu.WriteOp(ref ins, 0, size, value);
        }
        catch
        {
            cpu.Gpr[Cpu.RSP] = oldSp;
            throw;
        }
    }

    private static void PushImm(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        cpu.PushSized(size, ins.GetImmediate(0) & Cpu.SizeMask(size));
    }

    private static void Pusha(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        var sp = cpu.Gpr[Cpu.RSP];
        var origSp = cpu.ReadGpr(Cpu.RSP, size);
        try
        {
            for (var i = 0; i < 8; i++)
            {
                cpu.PushSized(size, i == Cpu.RSP ? origSp : cpu.ReadGpr(i, size));
            }
        }
        catch
        {
            cpu.Gpr[Cpu.RSP] = sp;
            throw;
        }
    }

    private static void Popa(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        var sp = cpu.Gpr[Cpu.RSP];
        Span<ulong> v = stackalloc ulong[8];
        try
        {
            for (var i = 7; i >= 0; i--)
            {
                v[i] = cpu.PopSized(size);
            }
        }
        catch
        {
            cpu.Gpr[Cpu.RSP] = sp;
            throw;
        }

        for (var i = 0; i < 8; i++)
        {
            if (i != Cpu.RSP)
            {
                cpu.WriteGpr(i, size, v[i]);
            }
        }
    }

    /// <summary>ENTER imm16, imm8 with nesting levels (SDM ENTER pseudocode); level is taken mod 32.</summary>
    private static void Enter(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        var allocSize = (ulong)ins.Immediate16;
        var level = ins.Immediate8_2nd & 31;
        var oldSp = cpu.Gpr[Cpu.RSP];
        var oldBp = cpu.Gpr[Cpu.RBP];
        try
        {
            cpu.PushSized(size, cpu.ReadGpr(Cpu.RBP, size));
            var frameTemp = cpu.ReadGpr(Cpu.RSP, cpu.StackSize);
            if (level > 0)
            {
                var bp = cpu.ReadGpr(Cpu.RBP, cpu.StackSize);
                for (var i = 1; i < level; i++)
                {
                    bp = (bp - size) & Cpu.SizeMask(cpu.StackSize);
                    cpu.PushSized(size, cpu.ReadMem(SegReg.SS, bp, size));
                }

                cpu.PushSized(size, frameTemp);
            }

            // Check the whole frame is writable before committing (the SDM's final stack probe).
            var newSp = (cpu.ReadGpr(Cpu.RSP, cpu.StackSize) - allocSize) & Cpu.SizeMask(cpu.StackSize);
            if (allocSize != 0)
            {
                cpu.WriteMem(SegReg.SS, newSp, 1, cpu.ReadMem(SegReg.SS, newSp, 1));
            }

            cpu.WriteGpr(Cpu.RBP, size, frameTemp);
            cpu.WriteGpr(Cpu.RSP, cpu.StackSize, newSp);
        }
        catch
        {
            cpu.Gpr[Cpu.RSP] = oldSp;
            cpu.Gpr[Cpu.RBP] = oldBp;
            throw;
        }
    }

    private static void Leave(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        var oldSp = cpu.Gpr[Cpu.RSP];
        cpu.WriteGpr(Cpu.RSP, cpu.StackSize, cpu.ReadGpr(Cpu.RBP, cpu.StackSize));
        try
        {
            cpu.WriteGpr(Cpu.RBP, size, cpu.PopSized(size));
        }
        catch
        {
            cpu.Gpr[Cpu.RSP] = oldSp;
            throw;
        }
    }

    /// <summary>PUSHF: the image has VM and RF cleared (SDM PUSHF).</summary>
    private static void Pushf(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        cpu.PushSized(size, cpu.Flags & ~(Rflags.VM | Rflags.RF) & Cpu.SizeMask(size));
    }

    /// <summary>
    /// POPF (SDM POPF): RF is cleared; VM, VIP and VIF never change; IOPL changes only at CPL 0;
    /// IF changes only if CPL &lt;= IOPL (otherwise it is silently kept); a 16-bit pop changes
    /// only the low 16 bits.
    /// </summary>
    private static void Popf(Cpu cpu, ref Instruction ins)
    {
        var size = Width[(int)ins.Code];
        var value = cpu.PopSized(size);
        var old = cpu.Flags;
        var writable = Rflags.Status | Rflags.TF | Rflags.DF | Rflags.IF | Rflags.IOPL | Rflags.NT | Rflags.AC | Rflags.ID;
        if (cpu.ProtectedMode)
        {
            var cpl = cpu.Cpl;
            if (cpl > 0)
            {
                writable &= ~Rflags.IOPL;
            }

            if (cpl > cpu.Iopl)
            {
                writable &= ~Rflags.IF;
            }
        }

        if (size == 2)
        {
            writable &= 0xFFFF;
        }

        cpu.SetFlagsRaw(((old & ~writable) | (value & writable)) & ~Rflags.RF);

        // TF or IF may have changed: end the block so the run loop re-evaluates the windows.
        cpu.BreakBlock();
    }
}
