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
}
