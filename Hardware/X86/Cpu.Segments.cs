namespace ActorVm.Hardware.X86;

/// <summary>Segment loads through the GDT/LDT with the protected-mode checks (SDM vol. 3 5.5-5.8).</summary>
public sealed partial class Cpu
{
    /// <summary>Reads the 8-byte descriptor named by a selector; #GP(selector) past the table limit.</summary>
    public ulong ReadDescriptor(ushort selector, byte faultVector = Vector.GP)
    {
        var index = (ulong)(selector & ~7);
        ulong tableBase;
        uint limit;
        if ((selector & 4) != 0)
        {
            tableBase = Ldtr.Base;
            limit = Ldtr.Limit;
        }
        else
        {
            tableBase = Gdtr.Base;
            limit = Gdtr.Limit;
        }

        if (index + 7 > limit)
        {
            throw new GuestFault(faultVector, (uint)(selector & ~3));
        }

        return ReadLinear(SystemLinear(tableBase + index), 8);
    }

    /// <summary>16-byte system descriptors (LDT, TSS, gates) in long mode carry base bits 63:32 in the next 8 bytes.</summary>
    public ulong ReadDescriptorHigh(ushort selector) => ReadLinear(SystemLinear(((selector & 4) != 0 ? Ldtr.Base : Gdtr.Base) + (ulong)(selector & ~7) + 8), 8);

    private ulong SystemLinear(ulong address) => LongModeActive ? address : (uint)address;

    /// <summary>
    /// Loads a segment register. Real mode: base = selector × 16. Protected mode: the checks
    /// of MOV Sreg/POP Sreg (SDM vol. 2 MOV), raising #GP, #SS or #NP with the selector.
    /// </summary>
    public void LoadSegment(SegReg seg, ushort selector)
    {
        if (!ProtectedMode || (Flags & Rflags.VM) != 0)
        {
            var attributes = seg == SegReg.CS ? (ushort)0x9B : (ushort)0x93;
            var old = Seg[(int)seg];
            Seg[(int)seg] = new Segment
            {
                Selector = selector,
                Base = (ulong)selector << 4,
                // Real mode keeps the cached limit and attributes ("unreal mode" relies on it).
                Limit = ProtectedMode ? 0xFFFF : old.Limit,
                Attributes = ProtectedMode ? attributes : (ushort)((old.Attributes & ~0x9F) | (attributes & 0x9F)),
            };
            if (seg is SegReg.CS or SegReg.SS)
            {
                UpdateMode();
            }

            return;
        }

        if ((selector & ~3) == 0)
        {
            if (seg == SegReg.CS || (seg == SegReg.SS && (Bitness != 64 || (selector & 3) != Cpl)))
            {
                throw GuestFault.Gp();
            }

            // A null selector: usable in DS/ES/FS/GS (faults on use), and in SS at CPL<3 in 64-bit mode.
            Seg[(int)seg] = new Segment { Selector = selector, Attributes = (ushort)(seg == SegReg.SS ? ((selector & 3) << 5) : 0) };
            return;
        }

        var d = ReadDescriptor(selector);
        var s = Segment.FromDescriptor(selector, d);
        var rpl = selector & 3;
        var err = (uint)(selector & ~3);
        if ((s.Attributes & 0x10) == 0)
        {
            throw GuestFault.Gp(err);
        }

        if (seg == SegReg.SS)
        {
            // Writable data segment with RPL = DPL = CPL.
            if (s.IsCode || (s.Type & 2) == 0 || rpl != Cpl || s.Dpl != Cpl)
            {
                throw GuestFault.Gp(err);
            }

            if (!s.Present)
            {
                throw new GuestFault(Vector.SS, err);
            }
        }
        else if (seg != SegReg.CS)
        {
            // Data or readable code; DPL ≥ max(CPL, RPL) unless conforming code.
            if (s.IsCode && (s.Type & 2) == 0)
            {
                throw GuestFault.Gp(err);
            }

            var conforming = s.IsCode && (s.Type & 4) != 0;
            if (!conforming && s.Dpl < Math.Max(Cpl, rpl))
            {
                throw GuestFault.Gp(err);
            }

            if (!s.Present)
            {
                throw new GuestFault(Vector.NP, err);
            }
        }
        else if (!s.Present)
        {
            throw new GuestFault(Vector.NP, err);
        }

        SetAccessedBit(selector, d);
        if (Bitness == 64 && seg is SegReg.FS or SegReg.GS)
        {
            // Only the low 32 bits of the base come from the descriptor; MSRs set the rest.
            s.Base = (uint)s.Base;
        }

        Seg[(int)seg] = s;
        if (seg is SegReg.CS or SegReg.SS)
        {
            UpdateMode();
        }
    }

    /// <summary>Loads CS for a far transfer to <paramref name="selector"/> (JMP/CALL FAR, RETF, IRET): code segment checks, CPL := RPL.</summary>
    public void LoadCodeSegment(ushort selector, int newCpl)
    {
        if (!ProtectedMode || (Flags & Rflags.VM) != 0)
        {
            LoadSegment(SegReg.CS, selector);
            return;
        }

        if ((selector & ~3) == 0)
        {
            throw GuestFault.Gp();
        }

        var d = ReadDescriptor(selector);
        var s = Segment.FromDescriptor(selector, d);
        var err = (uint)(selector & ~3);
        if (!s.IsCode)
        {
            throw GuestFault.Gp(err);
        }

        if (!s.Present)
        {
            throw new GuestFault(Vector.NP, err);
        }

        if (LongModeActive && s.Long && s.Big)
        {
            throw GuestFault.Gp(err);
        }

        SetAccessedBit(selector, d);
        var oldCpl = Cpl;
        s.Selector = (ushort)((selector & ~3) | newCpl);
        Seg[(int)SegReg.CS] = s;
        if (oldCpl != newCpl)
        {
            FlushTlb();
        }

        UpdateMode();
    }

    private void SetAccessedBit(ushort selector, ulong d)
    {
        if ((d & (1UL << 40)) == 0)
        {
            var addr = SystemLinear(((selector & 4) != 0 ? Ldtr.Base : Gdtr.Base) + (ulong)(selector & ~7) + 5);
            WriteLinear(addr, 1, ((d >> 40) & 0xFF) | 1);
        }
    }

    /// <summary>Sets the CPL directly (loaders, SYSCALL/SYSRET-style transitions), flushing permission-dependent caches.</summary>
    public void SetCsCpl(int cpl)
    {
        ref var cs = ref Seg[(int)SegReg.CS];
        cs.Selector = (ushort)((cs.Selector & ~3) | cpl);
        cs.Attributes = (ushort)((cs.Attributes & ~0x60) | (cpl << 5));
        FlushTlb();
    }

    /// <summary>LLDT (SDM vol. 2): a null selector disables the LDT; otherwise a present LDT descriptor (type 2) from the GDT.</summary>
    public void LoadLdt(ushort selector)
    {
        if ((selector & ~3) == 0)
        {
            Ldtr = new Segment { Selector = selector };
            return;
        }

        var err = (uint)(selector & ~3);
        if ((selector & 4) != 0)
        {
            throw GuestFault.Gp(err);
        }

        var d = ReadDescriptor(selector);
        var s = Segment.FromDescriptor(selector, d);
        if ((s.Attributes & 0x10) != 0 || s.Type != 2)
        {
            throw GuestFault.Gp(err);
        }

        if (!s.Present)
        {
            throw new GuestFault(Vector.NP, err);
        }

        if (LongModeActive)
        {
            s.Base |= ReadDescriptorHigh(selector) << 32;
        }

        Ldtr = s;
    }

    /// <summary>LTR (SDM vol. 2): an available TSS from the GDT (16-bit or 32-bit; only 64-bit in IA-32e mode), which becomes busy.</summary>
    public void LoadTaskRegister(ushort selector)
    {
        var err = (uint)(selector & ~3);
        if ((selector & ~3) == 0)
        {
            throw GuestFault.Gp();
        }

        if ((selector & 4) != 0)
        {
            throw GuestFault.Gp(err);
        }

        var d = ReadDescriptor(selector);
        var s = Segment.FromDescriptor(selector, d);
        var available = LongModeActive ? s.Type == 9 : s.Type is 1 or 9;
        if ((s.Attributes & 0x10) != 0 || !available)
        {
            throw GuestFault.Gp(err);
        }

        if (!s.Present)
        {
            throw new GuestFault(Vector.NP, err);
        }

        if (LongModeActive)
        {
            s.Base |= ReadDescriptorHigh(selector) << 32;
        }

        // Mark the descriptor busy (type bit 1) in memory and in the cache.
        var addr = SystemLinear(Gdtr.Base + (ulong)(selector & ~7) + 5);
        WriteLinear(addr, 1, ((d >> 40) & 0xFF) | 2);
        s.Attributes |= 2;
        Tr = s;
    }

    /// <summary>The state a far transfer may change, restored if it faults half-way (the SDM's checks come before any change).</summary>
    internal readonly record struct TransferSnapshot(Segment Cs, Segment Ss, ulong Rsp, ulong Rip, ulong Flags);

    internal TransferSnapshot Snapshot() => new(Seg[(int)SegReg.CS], Seg[(int)SegReg.SS], Gpr[RSP], Rip, Flags);

    internal void Restore(in TransferSnapshot s)
    {
        var cplChanged = (s.Cs.Selector & 3) != (Seg[(int)SegReg.CS].Selector & 3);
        Seg[(int)SegReg.CS] = s.Cs;
        Seg[(int)SegReg.SS] = s.Ss;
        Gpr[RSP] = s.Rsp;
        Rip = s.Rip;
        SetFlagsRaw(s.Flags);
        if (cplChanged)
        {
            FlushTlb();
        }

        UpdateMode();
    }

    /// <summary>
    /// Checks a far JMP/CALL/RET target code segment at the same privilege (SDM 5.8.1): non-conforming
    /// needs RPL ≤ CPL and DPL = CPL, conforming DPL ≤ CPL. System descriptors (call gates, TSS,
    /// task gates) are not modelled and raise #GP(selector).
    /// </summary>
    public void FarTransferTo(ushort selector, ulong offset, int operandSize)
    {
        if (!ProtectedMode || (Flags & Rflags.VM) != 0)
        {
            LoadSegment(SegReg.CS, selector);
            Rip = offset & SizeMask(operandSize);
            return;
        }

        if ((selector & ~3) == 0)
        {
            throw GuestFault.Gp();
        }

        var err = (uint)(selector & ~3);
        var s = Segment.FromDescriptor(selector, ReadDescriptor(selector));
        if (!s.IsCode)
        {
            throw GuestFault.Gp(err);
        }

        var conforming = (s.Type & 4) != 0;
        if (conforming ? s.Dpl > Cpl : (selector & 3) > Cpl || s.Dpl != Cpl)
        {
            throw GuestFault.Gp(err);
        }

        CheckCodeLimit(s, offset);
        LoadCodeSegment(selector, Cpl);
        Rip = Is64BitMode ? offset : offset & SizeMask(operandSize);
    }

    private void CheckCodeLimit(in Segment target, ulong offset)
    {
        var to64 = LongModeActive && target.Long;
        if (to64 ? (ulong)((long)(offset << 16) >> 16) != offset : offset > target.Limit)
        {
            throw GuestFault.Gp();
        }
    }

    /// <summary>Reads the stack at RSP + <paramref name="offset"/> without popping (far returns check everything before committing).</summary>
    internal ulong PeekStack(ulong offset, int size)
    {
        var sp = Gpr[RSP] + offset;
        var eff = StackSize switch { 2 => (ushort)sp, 4 => (uint)sp, _ => sp };
        return ReadMem(SegReg.SS, eff, size);
    }

    internal void AdjustStack(ulong bytes)
    {
        var sp = Gpr[RSP] + bytes;
        Gpr[RSP] = StackSize switch { 2 => (Gpr[RSP] & ~0xFFFFUL) | (ushort)sp, 4 => (uint)sp, _ => sp };
    }

    /// <summary>
    /// RETF [imm16] (SDM vol. 2 RET): same privilege, or to an outer ring with SS:ESP popped
    /// after the immediate is released from the inner stack.
    /// </summary>
    public void FarReturn(int size, ushort release)
    {
        var offset = PeekStack(0, size);
        var selector = (ushort)PeekStack((ulong)size, size);
        if (!ProtectedMode || (Flags & Rflags.VM) != 0)
        {
            LoadSegment(SegReg.CS, selector);
            Rip = offset & SizeMask(size);
            AdjustStack((ulong)(2 * size) + release);
            return;
        }

        var rpl = selector & 3;
        var s = ReturnCodeSegment(selector, Cpl);

        if (rpl == Cpl)
        {
            CheckCodeLimit(s, offset);
            LoadCodeSegment(selector, rpl);
            Rip = Is64BitMode ? offset : offset & SizeMask(size);
            AdjustStack((ulong)(2 * size) + release);
            return;
        }

        var newSp = PeekStack((ulong)(2 * size) + release, size);
        var newSs = (ushort)PeekStack((ulong)(3 * size) + release, size);
        var snapshot = Snapshot();
        try
        {
            CheckCodeLimit(s, offset);
            LoadCodeSegment(selector, rpl);
            LoadSegment(SegReg.SS, newSs);
            Gpr[RSP] = size == 2 ? (Gpr[RSP] & ~0xFFFFUL) | (ushort)newSp : size == 4 ? (uint)newSp : newSp;
            AdjustStack(release);
            Rip = Is64BitMode ? offset : offset & SizeMask(size);
        }
        catch (GuestFault)
        {
            Restore(snapshot);
            throw;
        }

        NullOuterDataSegments();
    }

    /// <summary>On a return to an outer ring, data segments the new CPL may not use become null (SDM 5.8.6).</summary>
    private static readonly SegReg[] DataSegments = [SegReg.ES, SegReg.DS, SegReg.FS, SegReg.GS];

    private void NullOuterDataSegments()
    {
        foreach (var r in DataSegments)
        {
            ref var seg = ref Seg[(int)r];
            var conformingCode = seg.IsCode && (seg.Type & 4) != 0;
            if ((seg.Selector & ~3) != 0 && !conformingCode && seg.Dpl < Cpl)
            {
                seg = new Segment { Selector = 0 };
            }
        }
    }

    /// <summary>
    /// IRET/IRETD/IRETQ (SDM vol. 2 IRET): real mode, protected mode (same or outer privilege),
    /// and IA-32e mode, where a 64-bit IRET always pops SS:RSP. Unblocks NMIs. Task returns
    /// (NT=1 in legacy protected mode) and returns to virtual-8086 mode are not modelled: #GP(0).
    /// </summary>
    public void InterruptReturn(int size)
    {
        var ip = PeekStack(0, size);
        var selector = (ushort)PeekStack((ulong)size, size);
        var flags = PeekStack((ulong)(2 * size), size);
        var oldCpl = Cpl;
        if (!ProtectedMode)
        {
            LoadSegment(SegReg.CS, selector);
            Rip = ip & SizeMask(size);
            AdjustStack((ulong)(3 * size));
            ApplyIretFlags(flags, size, 0);
            NmiBlocked = false;
            return;
        }

        if (!LongModeActive && (Flags & Rflags.NT) != 0)
        {
            throw GuestFault.Gp();
        }

        if (oldCpl == 0 && size == 4 && (flags & Rflags.VM) != 0 && !LongModeActive)
        {
            throw GuestFault.Gp();
        }

        var rpl = selector & 3;
        var s = ReturnCodeSegment(selector, oldCpl);

        var popStack = rpl != oldCpl || Is64BitMode;
        ulong newSp = 0;
        ushort newSs = 0;
        if (popStack)
        {
            newSp = PeekStack((ulong)(3 * size), size);
            newSs = (ushort)PeekStack((ulong)(4 * size), size);
        }

        var snapshot = Snapshot();
        try
        {
            CheckCodeLimit(s, ip);
            LoadCodeSegment(selector, rpl);
            if (popStack)
            {
                LoadSegment(SegReg.SS, newSs);
                Gpr[RSP] = size switch { 2 => (Gpr[RSP] & ~0xFFFFUL) | (ushort)newSp, 4 => (uint)newSp, _ => newSp };
            }
            else
            {
                AdjustStack((ulong)(3 * size));
            }

            Rip = Is64BitMode ? ip : ip & SizeMask(size);
        }
        catch (GuestFault)
        {
            Restore(snapshot);
            throw;
        }

        ApplyIretFlags(flags, size, oldCpl);
        if (rpl > oldCpl)
        {
            NullOuterDataSegments();
        }

        NmiBlocked = false;
    }

    /// <summary>IRET's RFLAGS rules: IOPL only at CPL 0, IF only at CPL ≤ IOPL, VM/VIF/VIP not from here; a 16-bit IRET keeps the upper half.</summary>
    private void ApplyIretFlags(ulong popped, int size, int oldCpl)
    {
        var current = Flags;
        var mask = Rflags.Status | Rflags.TF | Rflags.DF | Rflags.OF | Rflags.NT | Rflags.IF | Rflags.IOPL
            | (size > 2 ? Rflags.RF | Rflags.AC | Rflags.ID : 0);
        if (ProtectedMode)
        {
            if (oldCpl > 0)
            {
                mask &= ~Rflags.IOPL;
            }

            if (oldCpl > Iopl)
            {
                mask &= ~Rflags.IF;
            }
        }

        SetFlagsRaw((current & ~mask) | (popped & mask));
    }

    /// <summary>
    /// The code segment a far return (RETF, IRET) goes back to, with the checks both share
    /// (SDM vol. 2 RET and IRET): non-null, RPL not inner to the current CPL, a code segment whose
    /// DPL matches the RPL (at most the RPL when conforming), present.
    /// </summary>
    private Segment ReturnCodeSegment(ushort selector, int cpl)
    {
        if ((selector & ~3) == 0)
        {
            throw GuestFault.Gp();
        }

        var rpl = selector & 3;
        var err = (uint)(selector & ~3);
        if (rpl < cpl)
        {
            throw GuestFault.Gp(err);
        }

        var s = Segment.FromDescriptor(selector, ReadDescriptor(selector));
        if (!s.IsCode || ((s.Type & 4) != 0 ? s.Dpl > rpl : s.Dpl != rpl))
        {
            throw GuestFault.Gp(err);
        }

        if (!s.Present)
        {
            throw new GuestFault(Vector.NP, err);
        }

        return s;
    }
}
