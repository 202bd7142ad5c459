using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware.X86;

public enum AccessKind
{
    Read = 0,
    Write = 1,
    Execute = 2,
}

/// <summary>
/// Linear and physical memory access: segmentation, the page walk (32-bit, PAE and 4-level,
/// SDM vol. 3 chapter 4), a direct-mapped TLB in front of it, RAM through a host pointer and
/// everything else through MMIO. Accesses to the APIC page and to addresses no device claims
/// leave the slice (exits 44 and 48) and are replayed once the exit handler completed them.
/// </summary>
public sealed unsafe partial class Cpu
{
    // 1024 entries, as Bochs has: a loop over 2 MiB of 4 KiB pages (512 of them) stays in it.
    private const int TlbSize = 1024;

    private struct TlbEntry
    {
        /// <summary>Linear page number + 1 (0 = invalid).</summary>
        public ulong Tag;
        public ulong PhysPage;
        /// <summary>Host pointer to the page, or null when it is not plain RAM.</summary>
        public byte* Host;
        /// <summary>The page's "holds code" flag in guest memory (<see cref="GuestMemory.CodeFlag"/>), when <see cref="Host"/> is set.</summary>
        public byte* Code;
        public bool Read, Write, Exec;
        /// <summary>
        /// Tag when a read (write) may go straight to <see cref="Host"/>, else 0: the fast
        /// paths compare one word instead of tag, permission and pointer.
        /// </summary>
        public ulong HostReadTag, HostWriteTag;
    }

    // Pinned: the fast paths index it through _tlbBase.
    private readonly TlbEntry[] _tlb = GC.AllocateArray<TlbEntry>(TlbSize, pinned: true);
    private readonly TlbEntry* _tlbBase;
    private readonly List<ulong> _mmioCompletions = [];
    private int _mmioReplay;

    /// <summary>
    /// Moves on whenever a linear→physical translation or the code segment may have changed
    /// (TLB flushes, mode and CS changes): the decode cache's RIP-indexed fast path trusts a
    /// block only within the epoch it was found in.
    /// </summary>
    internal uint TranslationEpoch;

    /// <summary>Drops every cached translation (MOV CR3, CR0/CR4 paging bits, CPL or mode changes).</summary>
    public void FlushTlb()
    {
        Array.Clear(_tlb);
        TranslationEpoch++;
    }

    /// <summary>INVLPG: drops the translation of one linear page.</summary>
    public void FlushTlbPage(ulong linear)
    {
        TranslationEpoch++;
        ref var e = ref _tlb[(linear >> 12) & (TlbSize - 1)];
        if (e.Tag == (linear >> 12) + 1)
        {
            e.Tag = e.HostReadTag = e.HostWriteTag = 0;
        }
    }

    /// <summary>The TLB slot of a linear address (the index is masked, so no bounds check).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref TlbEntry TlbSlot(ulong la) => ref _tlbBase[(la >> 12) & (TlbSize - 1)];

    // ---- segmentation ----

    /// <summary>Segment base + offset, truncated to the address width, canonical-checked in 64-bit mode.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Linear(SegReg seg, ulong offset)
    {
        if (Bitness == 64)
        {
            var la = seg >= SegReg.FS ? Seg[(int)seg].Base + offset : offset;
            if ((ulong)((long)(la << 16) >> 16) != la)
            {
                throw seg == SegReg.SS ? new GuestFault(Vector.SS, 0) : GuestFault.Gp();
            }

            return la;
        }

        return (uint)(Seg[(int)seg].Base + offset);
    }

    // ---- typed access through a segment ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadMem(SegReg seg, ulong offset, int size) => ReadLinear(Linear(seg, offset), size);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteMem(SegReg seg, ulong offset, int size, ulong value) => WriteLinear(Linear(seg, offset), size, value);

    // ---- linear access ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadLinear(ulong la, int size)
    {
        // The tag is compared with the page of the access's last byte: an entry can only match
        // that page when it is also the first byte's (the slot is the first byte's), so one
        // compare checks the translation and that the access does not cross a page.
        ref var e = ref TlbSlot(la);
        if (e.HostReadTag == ((la + (ulong)size - 1) >> 12) + 1)
        {
            var p = e.Host + (la & 0xFFF);
            return size switch
            {
                1 => *p,
                2 => *(ushort*)p,
                4 => *(uint*)p,
                _ => *(ulong*)p,
            };
        }

        return ReadLinearSlow(la, size);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLinear(ulong la, int size, ulong value)
    {
        // One compare for translation, permission and no page crossing, as in ReadLinear.
        ref var e = ref TlbSlot(la);
        if (e.HostWriteTag == ((la + (ulong)size - 1) >> 12) + 1)
        {
            var p = e.Host + (la & 0xFFF);
            switch (size)
            {
                case 1: *p = (byte)value; break;
                case 2: *(ushort*)p = (ushort)value; break;
                case 4: *(uint*)p = (uint)value; break;
                default: *(ulong*)p = value; break;
            }

            // One byte says whether the page holds decoded code (rarely: then NoteWrite moves
            // its generation on and this block ends).
            if (*e.Code != 0 && Memory.NoteWrite((e.PhysPage << 12) | (la & 0xFFF), size))
            {
                _breakBlock = true;
            }

            return;
        }

        WriteLinearSlow(la, size, value);
    }

    private ulong ReadLinearSlow(ulong la, int size)
    {
        if ((la & 0xFFF) + (ulong)size > 0x1000)
        {
            // Split access: translate both pages before touching either (a #PF on the
            // second page must leave no trace of the first).
            var first = (int)(0x1000 - (la & 0xFFF));
            Translate(la, AccessKind.Read);
            Translate(la + (ulong)first, AccessKind.Read);
            ulong v = 0;
            for (var i = 0; i < size; i++)
            {
                v |= ReadLinearSlow(la + (ulong)i, 1) << (8 * i);
            }

            return v;
        }

        var pa = Translate(la, AccessKind.Read);
        return ReadPhysical(pa, size);
    }

    private void WriteLinearSlow(ulong la, int size, ulong value)
    {
        if ((la & 0xFFF) + (ulong)size > 0x1000)
        {
            var first = (int)(0x1000 - (la & 0xFFF));
            Translate(la, AccessKind.Write);
            Translate(la + (ulong)first, AccessKind.Write);
            for (var i = 0; i < size; i++)
            {
                WriteLinearSlow(la + (ulong)i, 1, value >> (8 * i));
            }

            return;
        }

        var pa = Translate(la, AccessKind.Write);
        WritePhysical(pa, size, value);
    }

    /// <summary>Reads guest-physical memory on behalf of the CPU (page walks, descriptor tables via paging).</summary>
    public ulong ReadPhysical(ulong pa, int size)
    {
        if (Memory.IsRam(pa, size) && !IsApicPage(pa))
        {
            var p = Memory.Pointer(pa);
            return size switch
            {
                1 => *p,
                2 => *(ushort*)p,
                4 => *(uint*)p,
                _ => *(ulong*)p,
            };
        }

        return ReadMmio(pa, size);
    }

    public void WritePhysical(ulong pa, int size, ulong value)
    {
        if (Memory.IsRam(pa, size) && !IsApicPage(pa))
        {
            var p = Memory.Pointer(pa);
            switch (size)
            {
                case 1: *p = (byte)value; break;
                case 2: *(ushort*)p = (ushort)value; break;
                case 4: *(uint*)p = (uint)value; break;
                default: *(ulong*)p = value; break;
            }

            if (Memory.NoteWrite(pa, size))
            {
                _breakBlock = true;
            }

            return;
        }

        WriteMmio(pa, size, value);
    }

    // ---- MMIO: in-slice devices, or an exit replayed after completion ----

    /// <summary>The xAPIC page decodes only while the APIC is enabled and not in x2APIC mode.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsApicPage(ulong pa) =>
        (pa >> 12) == (ApicBase & Model.PhysicalAddressMask) >> 12
        && (ApicBase & (MsrApicBase.Enable | MsrApicBase.X2Apic)) == MsrApicBase.Enable;

    private ulong ReadMmio(ulong pa, int size)
    {
        if (!IsApicPage(pa) && Memory.FindRegion(pa) is { } region)
        {
            return region.Device.Read(pa - region.Base, size);
        }

        if (_mmioReplay < _mmioCompletions.Count)
        {
            return _mmioCompletions[_mmioReplay++];
        }

        throw new MmioExit(MmioExitRecord(pa, size, isWrite: false, value: 0));
    }

    private void WriteMmio(ulong pa, int size, ulong value)
    {
        if (!IsApicPage(pa) && Memory.FindRegion(pa) is { } region)
        {
            region.Device.Write(pa - region.Base, size, value);
            return;
        }

        if (_mmioReplay < _mmioCompletions.Count)
        {
            _mmioReplay++;
            return;
        }

        throw new MmioExit(MmioExitRecord(pa, size, isWrite: true, value));
    }

    private VmExit MmioExitRecord(ulong pa, int size, bool isWrite, ulong value)
    {
        if (IsApicPage(pa))
        {
            // APIC_ACCESS qualification (SDM table 28-6): offset 11:0, access type 15:12 (0 read, 1 write).
            return new VmExit(ExitReason.ApicAccess, (pa & 0xFFF) | (isWrite ? 1UL << 12 : 0), pa, value, size, isWrite);
        }

        // EPT_VIOLATION qualification bits 0/1: data read / data write.
        return new VmExit(ExitReason.EptViolation, isWrite ? 2UL : 1UL, pa, value, size, isWrite);
    }

    /// <summary>Supplies the value of the MMIO read that caused the last exit; the instruction is replayed.</summary>
    public void CompleteMmioRead(ulong value) => _mmioCompletions.Add(value);

    /// <summary>Acknowledges the MMIO write that caused the last exit; the instruction is replayed.</summary>
    public void CompleteMmioWrite() => _mmioCompletions.Add(0);

    private void RetireMmio()
    {
        if (_mmioCompletions.Count != 0)
        {
            _mmioCompletions.Clear();
        }

        _mmioReplay = 0;
    }

    // ---- paging ----

    /// <summary>Linear → physical for an access, filling the TLB; raises #PF per SDM 4.7.</summary>
    public ulong Translate(ulong la, AccessKind kind)
    {
        var page = la >> 12;
        ref var e = ref _tlb[page & (TlbSize - 1)];
        if (e.Tag == page + 1 && (kind switch { AccessKind.Read => e.Read, AccessKind.Write => e.Write, _ => e.Exec }))
        {
            return (e.PhysPage << 12) | (la & 0xFFF);
        }

        var pa = PagingEnabled ? Walk(la, kind, out var w, out var x) : Identity(la, out w, out x);
        var physPage = pa >> 12;
        e.Tag = page + 1;
        e.PhysPage = physPage;
        e.Host = Memory.IsRam(physPage << 12, 0x1000) && !IsApicPage(physPage << 12) ? Memory.Pointer(physPage << 12) : null;
        e.Code = e.Host != null ? Memory.CodeFlag(physPage) : null;
        e.Read = true;
        e.Write = w;
        e.Exec = x;
        e.HostReadTag = e.Host != null ? page + 1 : 0;
        e.HostWriteTag = e.Host != null && w ? page + 1 : 0;
        return pa;
    }

    private static ulong Identity(ulong la, out bool write, out bool exec)
    {
        write = exec = true;
        return la;
    }

    /// <summary>
    /// The page walk. <paramref name="writable"/> says whether the cached translation may take
    /// writes without another walk: the access rights allow it and the dirty bit is already set.
    /// </summary>
    private ulong Walk(ulong la, AccessKind kind, out bool writable, out bool executable)
    {
        var user = Cpl == 3;
        var write = kind == AccessKind.Write;
        var fetch = kind == AccessKind.Execute;
        var nxe = (Efer & EferBits.NXE) != 0;
        var wp = (Cr0 & Cr0Bits.WP) != 0;
        var pae = (Cr4 & Cr4Bits.PAE) != 0;

        bool rw = true, us = true, nx = false;
        ulong leaf, leafAddr, pageBase;
        int leafShift;

        if (!pae)
        {
            // 32-bit paging: 2 levels, 4 MiB pages with CR4.PSE (SDM 4.3).
            var pdeAddr = (Cr3 & 0xFFFFF000) + ((la >> 22) & 0x3FF) * 4;
            var pde = ReadPhysical(pdeAddr, 4);
            if ((pde & 1) == 0) throw PageFault(la, kind, user, present: false);
            rw &= (pde & 2) != 0;
            us &= (pde & 4) != 0;
            if ((pde & 0x80) != 0 && (Cr4 & Cr4Bits.PSE) != 0)
            {
                leaf = pde;
                leafAddr = pdeAddr;
                leafShift = 22;
                pageBase = (pde & 0xFFC00000) | ((pde & 0x1FE000) << 19);
            }
            else
            {
                SetAccessed(pdeAddr, pde, 4);
                var pteAddr = (pde & 0xFFFFF000) + ((la >> 12) & 0x3FF) * 4;
                var pte = ReadPhysical(pteAddr, 4);
                if ((pte & 1) == 0) throw PageFault(la, kind, user, present: false);
                rw &= (pte & 2) != 0;
                us &= (pte & 4) != 0;
                leaf = pte;
                leafAddr = pteAddr;
                leafShift = 12;
                pageBase = pte & 0xFFFFF000;
            }

            return FinishWalk(la, kind, user, wp, rw, us, nx: false, leaf, leafAddr, 4, leafShift, pageBase, out writable, out executable);
        }

        var addrMask = Model.PhysicalAddressMask & 0x000F_FFFF_FFFF_F000;
        ulong table;
        int level;
        if (LongModeActive)
        {
            table = Cr3 & addrMask;
            level = 4;
        }
        else
        {
            // PAE: the 4 PDPTEs (SDM 4.4.1); no R/W or U/S in them.
            var pdpteAddr = (Cr3 & 0xFFFFFFE0) + ((la >> 30) & 3) * 8;
            var pdpte = ReadPhysical(pdpteAddr, 8);
            if ((pdpte & 1) == 0) throw PageFault(la, kind, user, present: false);
            table = pdpte & addrMask;
            level = 2;
        }

        while (true)
        {
            var shift = 12 + (9 * (level - 1));
            var entryAddr = table + ((la >> shift) & 0x1FF) * 8;
            var entry = ReadPhysical(entryAddr, 8);
            if ((entry & 1) == 0) throw PageFault(la, kind, user, present: false);
            if (!nxe && (entry & (1UL << 63)) != 0) throw PageFault(la, kind, user, present: true, reserved: true);
            rw &= (entry & 2) != 0;
            us &= (entry & 4) != 0;
            nx |= nxe && (entry & (1UL << 63)) != 0;
            var large = level is 2 or 3 && (entry & 0x80) != 0;
            if (level == 3 && large && !Model.Has1GPages) throw PageFault(la, kind, user, present: true, reserved: true);
            if (level == 1 || large)
            {
                var mask = (1UL << shift) - 1;
                pageBase = entry & addrMask & ~mask;
                return FinishWalk(la, kind, user, wp, rw, us, nx, entry, entryAddr, 8, shift, pageBase, out writable, out executable);
            }

            SetAccessed(entryAddr, entry, 8);
            table = entry & addrMask;
            level--;
        }
    }

    private ulong FinishWalk(ulong la, AccessKind kind, bool user, bool wp, bool rw, bool us, bool nx,
        ulong leaf, ulong leafAddr, int entrySize, int leafShift, ulong pageBase, out bool writable, out bool executable)
    {
        var write = kind == AccessKind.Write;
        if (user && !us) throw PageFault(la, kind, user, present: true);
        var writeAllowed = rw || (!user && !wp);
        if (write && !writeAllowed) throw PageFault(la, kind, user, present: true);
        if (kind == AccessKind.Execute && nx) throw PageFault(la, kind, user, present: true);

        // Accessed on every walk; dirty on a write (SDM 4.8).
        var updated = leaf | 0x20 | (write ? 0x40UL : 0);
        if (updated != leaf)
        {
            WriteEntry(leafAddr, updated, entrySize);
        }

        writable = writeAllowed && (updated & 0x40) != 0;
        executable = !nx;
        return pageBase | (la & ((1UL << leafShift) - 1) & ~0xFFFUL) | (la & 0xFFF);
    }

    private void SetAccessed(ulong addr, ulong entry, int size)
    {
        if ((entry & 0x20) == 0)
        {
            WriteEntry(addr, entry | 0x20, size);
        }
    }

    private void WriteEntry(ulong addr, ulong value, int size)
    {
        // Another vCPU may update the same entry; an atomic OR keeps its bits.
        if (Memory.IsRam(addr, size))
        {
            if (size == 8)
            {
                Interlocked.Or(ref *(long*)Memory.Pointer(addr), (long)value);
            }
            else
            {
                Interlocked.Or(ref *(int*)Memory.Pointer(addr), (int)value);
            }

            Memory.NoteWrite(addr, size);
        }
    }

    private GuestFault PageFault(ulong la, AccessKind kind, bool user, bool present, bool reserved = false)
    {
        Cr2 = la;
        uint code = (present ? 1u : 0) | (kind == AccessKind.Write ? 2u : 0) | (user ? 4u : 0) | (reserved ? 8u : 0)
            | (kind == AccessKind.Execute && (Efer & EferBits.NXE) != 0 ? 16u : 0);
        return new GuestFault(Vector.PF, code);
    }

    /// <summary>A host pointer for an atomic read-modify-write, after a write-permission check.</summary>
    internal byte* AtomicPointer(ulong la, int size, out ulong pa)
    {
        if ((la & 0xFFF) + (ulong)size > 0x1000)
        {
            pa = ulong.MaxValue;
            return null;
        }

        pa = Translate(la, AccessKind.Write);
        return Memory.IsRam(pa, size) && !IsApicPage(pa) ? Memory.Pointer(pa) : null;
    }
}
