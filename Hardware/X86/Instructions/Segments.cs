using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Segment-register moves, far transfers and software interrupts (SDM vol. 2: MOV Sreg,
/// PUSH/POP Sreg, LDS..LSS, JMP/CALL FAR, RET FAR, IRET, INT n/INT3/INTO/INT1).
/// </summary>
internal static unsafe class Segments
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&MovToSreg, Code.Mov_Sreg_rm16, Code.Mov_Sreg_r32m16, Code.Mov_Sreg_r64m16);
        b.Add(&MovFromSreg, Code.Mov_rm16_Sreg, Code.Mov_r32m16_Sreg, Code.Mov_r64m16_Sreg);
        b.Add(&PushSreg, Code.Pushw_ES, Code.Pushd_ES, Code.Pushw_CS, Code.Pushd_CS, Code.Pushw_SS, Code.Pushd_SS,
            Code.Pushw_DS, Code.Pushd_DS, Code.Pushw_FS, Code.Pushd_FS, Code.Pushq_FS, Code.Pushw_GS, Code.Pushd_GS, Code.Pushq_GS);
        b.Add(&PopSreg, Code.Popw_ES, Code.Popd_ES, Code.Popw_SS, Code.Popd_SS, Code.Popw_DS, Code.Popd_DS,
            Code.Popw_FS, Code.Popd_FS, Code.Popq_FS, Code.Popw_GS, Code.Popd_GS, Code.Popq_GS);
        b.Add(&LoadFarPointer, Code.Les_r16_m1616, Code.Les_r32_m1632, Code.Lds_r16_m1616, Code.Lds_r32_m1632,
            Code.Lss_r16_m1616, Code.Lss_r32_m1632, Code.Lss_r64_m1664, Code.Lfs_r16_m1616, Code.Lfs_r32_m1632,
            Code.Lfs_r64_m1664, Code.Lgs_r16_m1616, Code.Lgs_r32_m1632, Code.Lgs_r64_m1664);
        b.Add(&JmpFarPtr, Code.Jmp_ptr1616, Code.Jmp_ptr1632);
        b.Add(&JmpFarMem, Code.Jmp_m1616, Code.Jmp_m1632, Code.Jmp_m1664);
        b.Add(&CallFarPtr, Code.Call_ptr1616, Code.Call_ptr1632);
        b.Add(&CallFarMem, Code.Call_m1616, Code.Call_m1632, Code.Call_m1664);
        b.Add(&RetFar, Code.Retfw, Code.Retfd, Code.Retfq, Code.Retfw_imm16, Code.Retfd_imm16, Code.Retfq_imm16);
        b.Add(&Iret, Code.Iretw, Code.Iretd, Code.Iretq);
        b.Add(&IntN, Code.Int_imm8);
        b.Add(&Int3, Code.Int3);
        b.Add(&Into, Code.Into);
        b.Add(&Int1, Code.Int1);
        b.Add(&Lar, Code.Lar_r16_rm16, Code.Lar_r32_r32m16, Code.Lar_r64_r64m16);
        b.Add(&Lsl, Code.Lsl_r16_rm16, Code.Lsl_r32_r32m16, Code.Lsl_r64_r64m16);
        b.Add(&Verr, Code.Verr_rm16, Code.Verr_r32m16, Code.Verr_r64m16);
        b.Add(&Verw, Code.Verw_rm16, Code.Verw_r32m16, Code.Verw_r64m16);
    }

    private static SegReg Sreg(Iced.Intel.Register r) => (SegReg)(r - Iced.Intel.Register.ES);

    /// <summary>MOV Sreg, r/m16: CS is #UD; loading SS blocks interrupts for one instruction.</summary>
    private static void MovToSreg(Cpu cpu, ref Instruction ins)
    {
        var seg = Sreg(ins.Op0Register);
        if (seg == SegReg.CS)
        {
            throw GuestFault.Ud();
        }

        cpu.LoadSegment(seg, (ushort)cpu.ReadOp(ref ins, 1, 2));
        if (seg == SegReg.SS)
        {
            cpu.SetInterruptShadow();
        }
    }

    /// <summary>MOV r/m, Sreg: a register destination gets the selector zero-extended; memory gets 16 bits.</summary>
    private static void MovFromSreg(Cpu cpu, ref Instruction ins)
    {
        var selector = cpu.Seg[(int)Sreg(ins.Op1Register)].Selector;
        if (ins.Op0Kind == OpKind.Register)
        {
            cpu.WriteReg(ins.Op0Register, selector);
        }
        else
        {
            cpu.WriteLinear(cpu.MemoryLinear(ref ins), 2, selector);
        }
    }

    private static readonly int[] PushSize = BuildSizes();

    private static int[] BuildSizes()
    {
        var t = new int[(int)Enum.GetValues<Code>().Max() + 1];
        foreach (var c in Enum.GetValues<Code>())
        {
            var name = c.ToString();
            if ((name.StartsWith("Push", StringComparison.Ordinal) || name.StartsWith("Pop", StringComparison.Ordinal)) && name.Length > 4)
            {
                var k = name.StartsWith("Push", StringComparison.Ordinal) ? 4 : 3;
                t[(int)c] = name[k] switch { 'w' => 2, 'd' => 4, 'q' => 8, _ => 0 };
            }
        }

        return t;
    }

    private static void PushSreg(Cpu cpu, ref Instruction ins)
    {
        cpu.PushSized(PushSize[(int)ins.Code], cpu.Seg[(int)Sreg(ins.Op0Register)].Selector);
    }

    /// <summary>POP Sreg: the load is checked before RSP moves; POP SS opens the interrupt shadow.</summary>
    private static void PopSreg(Cpu cpu, ref Instruction ins)
    {
        var size = PushSize[(int)ins.Code];
        var seg = Sreg(ins.Op0Register);
        var selector = (ushort)cpu.PeekStack(0, size);
        cpu.LoadSegment(seg, selector);
        cpu.AdjustStack((ulong)size);
        if (seg == SegReg.SS)
        {
            cpu.SetInterruptShadow();
        }
    }

    /// <summary>LDS/LES/LFS/LGS/LSS r, m16:16/32/64: offset first in memory, then the selector.</summary>
    private static void LoadFarPointer(Cpu cpu, ref Instruction ins)
    {
        if (ins.Op1Kind != OpKind.Memory)
        {
            throw GuestFault.Ud();
        }

        var size = Cpu.RegisterWidth(ins.Op0Register);
        var la = cpu.MemoryLinear(ref ins);
        var offset = cpu.ReadLinear(la, size);
        var selector = (ushort)cpu.ReadLinear(la + (ulong)size, 2);
        var seg = ins.Mnemonic switch
        {
            Mnemonic.Les => SegReg.ES,
            Mnemonic.Lds => SegReg.DS,
            Mnemonic.Lss => SegReg.SS,
            Mnemonic.Lfs => SegReg.FS,
            _ => SegReg.GS,
        };
        cpu.LoadSegment(seg, selector);
        cpu.WriteReg(ins.Op0Register, offset);
    }

    private static int FarSize(Code code) => code switch
    {
        Code.Jmp_ptr1616 or Code.Jmp_m1616 or Code.Call_ptr1616 or Code.Call_m1616 or Code.Retfw or Code.Retfw_imm16 => 2,
        Code.Jmp_m1664 or Code.Call_m1664 or Code.Retfq or Code.Retfq_imm16 => 8,
        _ => 4,
    };

    private static void ReadFarMemory(Cpu cpu, ref Instruction ins, int size, out ushort selector, out ulong offset)
    {
        var la = cpu.MemoryLinear(ref ins);
        offset = cpu.ReadLinear(la, size);
        selector = (ushort)cpu.ReadLinear(la + (ulong)size, 2);
    }

    private static ulong PtrOffset(ref Instruction ins) => ins.Code == Code.Jmp_ptr1616 || ins.Code == Code.Call_ptr1616 ? ins.FarBranch16 : ins.FarBranch32;

    private static void JmpFarPtr(Cpu cpu, ref Instruction ins) =>
        cpu.FarTransferTo(ins.FarBranchSelector, PtrOffset(ref ins), FarSize(ins.Code));

    private static void JmpFarMem(Cpu cpu, ref Instruction ins)
    {
        var size = FarSize(ins.Code);
        ReadFarMemory(cpu, ref ins, size, out var selector, out var offset);
        cpu.FarTransferTo(selector, offset, size);
    }

    private static void CallFarPtr(Cpu cpu, ref Instruction ins) =>
        CallFar(cpu, ins.FarBranchSelector, PtrOffset(ref ins), FarSize(ins.Code));

    private static void CallFarMem(Cpu cpu, ref Instruction ins)
    {
        var size = FarSize(ins.Code);
        ReadFarMemory(cpu, ref ins, size, out var selector, out var offset);
        CallFar(cpu, selector, offset, size);
    }

    /// <summary>CALL FAR to a code segment at the same privilege: pushes CS then the return offset (operand size each).</summary>
    private static void CallFar(Cpu cpu, ushort selector, ulong offset, int size)
    {
        var snapshot = cpu.Snapshot();
        try
        {
            cpu.PushSized(size, cpu.Seg[(int)SegReg.CS].Selector);
            cpu.PushSized(size, cpu.Rip);
            cpu.FarTransferTo(selector, offset, size);
        }
        catch (GuestFault)
        {
            cpu.Restore(snapshot);
            throw;
        }
    }

    private static void RetFar(Cpu cpu, ref Instruction ins)
    {
        var release = ins.Op0Kind == OpKind.Immediate16 ? ins.Immediate16 : (ushort)0;
        cpu.FarReturn(FarSize(ins.Code), release);
    }

    private static void Iret(Cpu cpu, ref Instruction ins)
    {
        cpu.InterruptReturn(ins.Code switch { Code.Iretw => 2, Code.Iretd => 4, _ => 8 });
    }

    /// <summary>INT n: a software interrupt (gate DPL checked against CPL), returning to the next instruction.</summary>
    private static void IntN(Cpu cpu, ref Instruction ins) =>
        cpu.Deliver(ins.Immediate8, EventType.SoftwareInterrupt, null);

    private static void Int3(Cpu cpu, ref Instruction ins) =>
        cpu.Deliver(Vector.BP, EventType.SoftwareException, null);

    /// <summary>INTO: #OF as a trap when OF=1; #UD in 64-bit mode (Iced does not decode it there).</summary>
    private static void Into(Cpu cpu, ref Instruction ins)
    {
        if (cpu.OF)
        {
            cpu.Deliver(Vector.OF, EventType.SoftwareException, null);
        }
    }

    /// <summary>INT1 (ICEBP): a privileged software exception, #DB without the gate DPL check.</summary>
    private static void Int1(Cpu cpu, ref Instruction ins) =>
        cpu.Deliver(Vector.DB, EventType.PrivilegedSoftwareException, null);

    // ---- LAR / LSL / VERR / VERW (SDM vol. 2): ZF reports whether the selector passes; no fault for a bad one ----

    /// <summary>
    /// The descriptor a selector names if it is visible at the current privilege: inside its
    /// table, non-null, and (unless conforming code) DPL ≥ max(CPL, RPL). Null otherwise.
    /// </summary>
    private static Segment? Visible(Cpu cpu, ushort selector, out ulong raw)
    {
        raw = 0;
        if (!cpu.ProtectedMode || (cpu.Flags & Rflags.VM) != 0)
        {
            throw GuestFault.Ud();
        }

        if ((selector & ~3) == 0)
        {
            return null;
        }

        var limit = (selector & 4) != 0 ? cpu.Ldtr.Limit : cpu.Gdtr.Limit;
        if ((ulong)(selector & ~7) + 7 > limit)
        {
            return null;
        }

        raw = cpu.ReadDescriptor(selector);
        var s = Segment.FromDescriptor(selector, raw);
        var conformingCode = s.IsCode && (s.Type & 4) != 0;
        if (!conformingCode && s.Dpl < Math.Max(cpu.Cpl, selector & 3))
        {
            return null;
        }

        return s;
    }

    /// <summary>System descriptor types LAR (gates included) and LSL accept; IA-32e mode knows only LDT and 64-bit TSS (and call gates for LAR).</summary>
    private static bool SystemTypeOk(Cpu cpu, int type, bool lar) => cpu.LongModeActive
        ? type is 2 or 9 or 0xB || (lar && type == 0xC)
        : type is 1 or 2 or 3 or 9 or 0xB || (lar && type is 4 or 5 or 0xC);

    private static void Lar(Cpu cpu, ref Instruction ins)
    {
        var s = Visible(cpu, (ushort)cpu.ReadOp(ref ins, 1, 2), out var raw);
        var ok = s is { } d && ((d.Attributes & 0x10) != 0 || SystemTypeOk(cpu, d.Type, lar: true));
        cpu.SetFlag(Rflags.ZF, ok);
        if (ok)
        {
            cpu.WriteReg(ins.Op0Register, (raw >> 32) & 0x00F0FF00 & Cpu.SizeMask(Cpu.RegisterWidth(ins.Op0Register)));
        }
    }

    private static void Lsl(Cpu cpu, ref Instruction ins)
    {
        var s = Visible(cpu, (ushort)cpu.ReadOp(ref ins, 1, 2), out _);
        var ok = s is { } d && ((d.Attributes & 0x10) != 0 || SystemTypeOk(cpu, d.Type, lar: false));
        cpu.SetFlag(Rflags.ZF, ok);
        if (ok)
        {
            cpu.WriteReg(ins.Op0Register, s!.Value.Limit & Cpu.SizeMask(Cpu.RegisterWidth(ins.Op0Register)));
        }
    }

    private static void Verr(Cpu cpu, ref Instruction ins)
    {
        var s = Visible(cpu, (ushort)cpu.ReadOp(ref ins, 0, 2), out _);
        cpu.SetFlag(Rflags.ZF, s is { } d && (d.Attributes & 0x10) != 0 && (!d.IsCode || (d.Type & 2) != 0));
    }

    private static void Verw(Cpu cpu, ref Instruction ins)
    {
        var s = Visible(cpu, (ushort)cpu.ReadOp(ref ins, 0, 2), out _);
        cpu.SetFlag(Rflags.ZF, s is { } d && (d.Attributes & 0x10) != 0 && !d.IsCode && (d.Type & 2) != 0);
    }
}
