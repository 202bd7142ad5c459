namespace ActorVm.Hardware.X86;

/// <summary>
/// Event delivery: exceptions, NMIs, external and software interrupts through the IVT (real
/// mode) or the IDT (protected and long mode, SDM vol. 3 6.12 and 6.14), with the #DF / triple
/// fault escalation of SDM 6.15 (table 6-5).
/// </summary>
public sealed partial class Cpu
{
    /// <summary>Interrupts blocked for one instruction after STI or MOV SS (SDM 6.8.3).</summary>
    public bool InterruptShadow { get; internal set; }

    /// <summary>NMIs blocked from NMI delivery until the next IRET (SDM 6.7.1).</summary>
    public bool NmiBlocked { get; set; }

    /// <summary>Counts of delivered events by vector, for statistics and tests.</summary>
    public long[] EventsDelivered { get; } = new long[256];

    /// <summary>Delivers an injected event; on a triple fault returns false with the shutdown exit.</summary>
    private bool TryDeliver(EventInjection e, out VmExit shutdown)
    {
        shutdown = default;
        try
        {
            Deliver(e.Vector, e.Type, e.ErrorCode);
            return true;
        }
        catch (GuestFault f)
        {
            return TryDeliverNested(e.Vector, e.Type, f, out shutdown);
        }
    }

    private bool TryDeliverFault(GuestFault fault, out VmExit shutdown)
    {
        shutdown = default;
        try
        {
            Deliver(fault.Vector, EventType.HardwareException, fault.ErrorCode);
            return true;
        }
        catch (GuestFault second)
        {
            return TryDeliverNested(fault.Vector, EventType.HardwareException, second, out shutdown);
        }
    }

    private bool TryDeliverNested(byte first, EventType firstType, GuestFault second, out VmExit shutdown)
    {
        shutdown = new VmExit(ExitReason.TripleFault, InstructionsRetired: _sliceRetired);
        var exception = firstType == EventType.HardwareException;
        if (exception && first == Vector.DF)
        {
            return false;
        }

        var escalate = exception
            && ((Vector.IsContributory(first) && Vector.IsContributory(second.Vector))
                || (first == Vector.PF && (second.Vector == Vector.PF || Vector.IsContributory(second.Vector))));
        var next = escalate ? new GuestFault(Vector.DF, 0) : second;
        try
        {
            Deliver(next.Vector, EventType.HardwareException, next.ErrorCode);
            return true;
        }
        catch (GuestFault third)
        {
            return TryDeliverNested(next.Vector, EventType.HardwareException, third, out shutdown);
        }
    }

    /// <summary>
    /// Delivers one event at the current RIP (the faulting instruction for faults, the next
    /// instruction for traps, interrupts and INT n). Throws GuestFault if delivery itself faults.
    /// </summary>
    public void Deliver(byte vector, EventType type, uint? errorCode)
    {
        Halted = false;
        InterruptShadow = false;
        if (type == EventType.Nmi)
        {
            NmiBlocked = true;
        }

        // A fault while delivering leaves no trace (SDM 6.15: the second exception is taken
        // with the state at the first one), so the #DF frame lands on the original stack.
        var snapshot = Snapshot();
        try
        {
            if (!ProtectedMode)
            {
                DeliverReal(vector);
            }
            else if (LongModeActive)
            {
                DeliverLong(vector, type, errorCode);
            }
            else
            {
                DeliverProtected(vector, type, errorCode);
            }
        }
        catch (GuestFault)
        {
            Restore(snapshot);
            throw;
        }

        EventsDelivered[vector]++;
        _breakBlock = true;
    }

    private void DeliverReal(byte vector)
    {
        var entry = (ulong)vector * 4;
        if (entry + 3 > Idtr.Limit)
        {
            throw GuestFault.Gp();
        }

        var ivt = ReadLinear((uint)(Idtr.Base + entry), 4);
        Push16((ushort)Flags);
        Push16(Seg[(int)SegReg.CS].Selector);
        Push16((ushort)Rip);
        SetControlFlag(Rflags.IF | Rflags.TF | Rflags.AC, false);
        LoadSegment(SegReg.CS, (ushort)(ivt >> 16));
        Rip = (ushort)ivt;
    }

    private void Push16(ushort value)
    {
        var sp = (ushort)(Gpr[RSP] - 2);
        WriteMem(SegReg.SS, sp, 2, value);
        WriteGpr(RSP, 2, sp);
    }

    private static uint IdtError(byte vector, EventType type) =>
        ((uint)vector << 3) | 2 | (type is EventType.ExternalInterrupt or EventType.Nmi or EventType.HardwareException ? 1u : 0);

    private void DeliverProtected(byte vector, EventType type, uint? errorCode)
    {
        var offset = (ulong)vector * 8;
        if (offset + 7 > Idtr.Limit)
        {
            throw GuestFault.Gp(IdtError(vector, type));
        }

        var gate = ReadLinear((uint)(Idtr.Base + offset), 8);
        var gateType = (int)(gate >> 40) & 0x1F;
        var gateDpl = (int)(gate >> 45) & 3;
        if (gateType is not (0x6 or 0x7 or 0xE or 0xF))
        {
            // Task gates (type 5) are not modelled: fail as a malformed IDT entry would.
            throw GuestFault.Gp(IdtError(vector, type));
        }

        if (type is EventType.SoftwareInterrupt or EventType.SoftwareException && gateDpl < Cpl)
        {
            throw GuestFault.Gp(IdtError(vector, type));
        }

        if ((gate & (1UL << 47)) == 0)
        {
            throw new GuestFault(Vector.NP, IdtError(vector, type));
        }

        var selector = (ushort)(gate >> 16);
        var target = (gate & 0xFFFF) | ((gate >> 32) & 0xFFFF0000);
        var is32 = (gateType & 8) != 0;
        var desc = Segment.FromDescriptor(selector, ReadDescriptor(selector));
        if (!desc.IsCode || (selector & ~3) == 0)
        {
            throw GuestFault.Gp((uint)(selector & ~3));
        }

        var oldFlags = Flags;
        var oldCs = Seg[(int)SegReg.CS].Selector;
        var oldSs = Seg[(int)SegReg.SS].Selector;
        var oldEsp = Gpr[RSP];
        var newCpl = (desc.Type & 4) != 0 ? Cpl : desc.Dpl;
        var size = is32 ? 4 : 2;
        if (newCpl < Cpl)
        {
            // Inner-privilege stack from the 32-bit TSS (SDM 7.7 figure 7-2).
            var ssOff = Tr.Base + (ulong)(newCpl * 8) + 8;
            var espOff = Tr.Base + (ulong)(newCpl * 8) + 4;
            var newEsp = ReadLinear((uint)espOff, 4);
            var newSs = (ushort)ReadLinear((uint)ssOff, 2);
            LoadCodeSegment(selector, newCpl);
            LoadSegment(SegReg.SS, newSs);
            Gpr[RSP] = newEsp;
            PushSized(size, oldSs);
            PushSized(size, oldEsp);
        }
        else
        {
            LoadCodeSegment(selector, newCpl);
        }

        PushSized(size, oldFlags);
        PushSized(size, oldCs);
        PushSized(size, Rip);
        if (errorCode is { } e && type == EventType.HardwareException)
        {
            PushSized(size, e);
        }

        SetControlFlag(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM, false);
        if ((gateType & 1) == 0)
        {
            SetControlFlag(Rflags.IF, false);
        }

        Rip = is32 ? target : target & 0xFFFF;
    }

    private void DeliverLong(byte vector, EventType type, uint? errorCode)
    {
        var offset = (ulong)vector * 16;
        if (offset + 15 > Idtr.Limit)
        {
            throw GuestFault.Gp(IdtError(vector, type));
        }

        var lo = ReadLinear(Idtr.Base + offset, 8);
        var hi = ReadLinear(Idtr.Base + offset + 8, 8);
        var gateType = (int)(lo >> 40) & 0x1F;
        var gateDpl = (int)(lo >> 45) & 3;
        if (gateType is not (0xE or 0xF))
        {
            throw GuestFault.Gp(IdtError(vector, type));
        }

        if (type is EventType.SoftwareInterrupt or EventType.SoftwareException && gateDpl < Cpl)
        {
            throw GuestFault.Gp(IdtError(vector, type));
        }

        if ((lo & (1UL << 47)) == 0)
        {
            throw new GuestFault(Vector.NP, IdtError(vector, type));
        }

        var selector = (ushort)(lo >> 16);
        var target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000) | (hi << 32);
        var ist = (int)(lo >> 32) & 7;
        var desc = Segment.FromDescriptor(selector, ReadDescriptor(selector));
        if (!desc.IsCode || !desc.Long || (selector & ~3) == 0)
        {
            throw GuestFault.Gp((uint)(selector & ~3));
        }

        var oldFlags = Flags;
        var oldCs = Seg[(int)SegReg.CS].Selector;
        var oldSs = Seg[(int)SegReg.SS].Selector;
        var oldRsp = Gpr[RSP];
        var newCpl = (desc.Type & 4) != 0 ? Cpl : desc.Dpl;
        ulong newRsp;
        if (ist != 0)
        {
            newRsp = ReadLinear(Tr.Base + 0x24 + (ulong)((ist - 1) * 8), 8);
        }
        else if (newCpl < Cpl)
        {
            newRsp = ReadLinear(Tr.Base + 4 + (ulong)(newCpl * 8), 8);
        }
        else
        {
            newRsp = oldRsp;
        }

        // The frame is 16-byte aligned and always holds SS:RSP (SDM 6.14.2).
        newRsp &= ~0xFUL;
        var push = errorCode is { } && type == EventType.HardwareException;
        var sp = newRsp - 40;
        WriteLinear(sp + 32, 8, oldSs);
        WriteLinear(sp + 24, 8, oldRsp);
        WriteLinear(sp + 16, 8, oldFlags);
        WriteLinear(sp + 8, 8, oldCs);
        WriteLinear(sp, 8, Rip);

        if (push)
        {
            sp -= 8;
            WriteLinear(sp, 8, errorCode!.Value);
        }

        var cplChanged = newCpl != Cpl;
        LoadCodeSegment(selector, newCpl);
        if (cplChanged)
        {
            Seg[(int)SegReg.SS] = new Segment { Selector = (ushort)newCpl, Attributes = (ushort)(newCpl << 5) };
            UpdateMode();
        }

        Gpr[RSP] = sp;
        SetControlFlag(Rflags.TF | Rflags.NT | Rflags.RF, false);
        if ((gateType & 1) == 0)
        {
            SetControlFlag(Rflags.IF, false);
        }

        Rip = target;
    }

    /// <summary>Push of 2, 4 or 8 bytes onto SS:RSP with the stack-address size of the current mode.</summary>
    public void PushSized(int size, ulong value)
    {
        var sp = Gpr[RSP] - (ulong)size;
        sp = StackSize switch { 2 => (Gpr[RSP] & ~0xFFFFUL) | (ushort)sp, 4 => (uint)sp, _ => sp };
        WriteMem(SegReg.SS, StackSize == 2 ? (ushort)sp : sp, size, value);
        Gpr[RSP] = sp;
    }

    /// <summary>Pop of 2, 4 or 8 bytes from SS:RSP.</summary>
    public ulong PopSized(int size)
    {
        var sp = Gpr[RSP];
        var offset = StackSize switch { 2 => (ushort)sp, 4 => (uint)sp, _ => sp };
        var value = ReadMem(SegReg.SS, offset, size);
        var next = offset + (ulong)size;
        Gpr[RSP] = StackSize switch { 2 => (sp & ~0xFFFFUL) | (ushort)next, 4 => (uint)next, _ => next };
        return value;
    }
}
