using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ActorVm.Hardware.Memory;

/// <summary>
/// Guest-physical address space: RAM from address 0 up to <see cref="RamSize"/>, MMIO regions
/// claimed by devices, and nothing elsewhere. RAM is one native, zeroed block so that vCPUs on
/// different host threads can use Interlocked operations on it (LOCK-prefixed instructions).
/// Each 4 KiB page carries a code generation: decoding a page marks it as holding code, and the
/// next write to such a page bumps its generation so cached decodes of it are dropped.
/// </summary>
public sealed unsafe class GuestMemory : IDisposable
{
    public const int PageShift = 12;
    public const ulong PageSize = 1UL << PageShift;

    /// <summary>Largest RAM we place below the 32-bit PCI/APIC hole.</summary>
    public const ulong MaxRamSize = 0xC000_0000;

    private readonly byte* _ram;
    private readonly int[] _codeGeneration;
    private readonly byte[] _holdsCode;
    private readonly object _splitLock = new();
    private MmioRegion[] _regions = [];

    public GuestMemory(ulong ramSize)
    {
        if (ramSize == 0 || ramSize > MaxRamSize || ramSize % PageSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ramSize), ramSize,
                $"guest RAM must be a non-zero multiple of 4 KiB and at most {MaxRamSize >> 20} MiB");
        }

        RamSize = ramSize;
        _ram = (byte*)NativeMemory.AllocZeroed((nuint)ramSize);
        var pages = (int)(ramSize >> PageShift);
        // Pinned: decoded blocks keep a pointer to the generation of their page(s).
        _codeGeneration = GC.AllocateArray<int>(pages, pinned: true);
        // Pinned: each vCPU's TLB keeps a pointer to the flag of the page an entry maps.
        _holdsCode = GC.AllocateArray<byte>(pages, pinned: true);
    }

    public ulong RamSize { get; }

    public IReadOnlyList<MmioRegion> Regions => _regions;

    /// <summary>Claims a physical range for a device. Overlaps with RAM or other regions are refused.</summary>
    public void AddRegion(MmioRegion region)
    {
        if (region.Base < RamSize || _regions.Any(r => r.Base < region.Base + region.Length && region.Base < r.Base + r.Length))
        {
            throw new InvalidOperationException($"MMIO region {region.Name} at 0x{region.Base:x} overlaps RAM or another region");
        }

        _regions = [.. _regions, region];
    }

    public MmioRegion? FindRegion(ulong address)
    {
        foreach (var r in _regions)
        {
            if (r.Contains(address))
            {
                return r;
            }
        }

        return null;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsRam(ulong address, int size) => address + (ulong)size <= RamSize && address + (ulong)size >= address;

    /// <summary>Host pointer to RAM at a guest-physical address; the caller has checked <see cref="IsRam"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Pointer(ulong address) => _ram + address;

    public Span<byte> RamSpan(ulong address, int length)
    {
        if (!IsRam(address, length))
        {
            throw new ArgumentOutOfRangeException(nameof(address), $"0x{address:x}+{length} is outside guest RAM (0x{RamSize:x} bytes)");
        }

        return new Span<byte>(_ram + address, length);
    }

    // ---- plain RAM accessors for loaders, devices and tests (not the CPU hot path) ----

    public void WriteBytes(ulong address, ReadOnlySpan<byte> data)
    {
        data.CopyTo(RamSpan(address, data.Length));
        NoteWrite(address, data.Length);
    }

    public void Fill(ulong address, ulong length, byte value)
    {
        while (length > 0)
        {
            var chunk = (int)Math.Min(length, 1UL << 30);
            RamSpan(address, chunk).Fill(value);
            NoteWrite(address, chunk);
            address += (ulong)chunk;
            length -= (ulong)chunk;
        }
    }

    public byte[] ReadBytes(ulong address, int length) => RamSpan(address, length).ToArray();

    public byte Read8(ulong address) => RamSpan(address, 1)[0];
    public ushort Read16(ulong address) => MemoryMarshal.Read<ushort>(RamSpan(address, 2));
    public uint Read32(ulong address) => MemoryMarshal.Read<uint>(RamSpan(address, 4));
    public ulong Read64(ulong address) => MemoryMarshal.Read<ulong>(RamSpan(address, 8));

    public void Write8(ulong address, byte value) => WriteBytes(address, [value]);
    public void Write16(ulong address, ushort value) => WriteBytes(address, BitConverter.GetBytes(value));
    public void Write32(ulong address, uint value) => WriteBytes(address, BitConverter.GetBytes(value));
    public void Write64(ulong address, ulong value) => WriteBytes(address, BitConverter.GetBytes(value));

    // ---- code tracking (self-modifying code, cross-vCPU writes) ----

    /// <summary>Current generation of a RAM page; a cached decode is valid while it matches.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int CodeGeneration(ulong page) => Volatile.Read(ref _codeGeneration[page]);

    /// <summary>
    /// The live "holds code" flag of a RAM page: a TLB entry keeps it so a store checks one byte
    /// before calling <see cref="NoteWrite"/> (the flag is shared by all vCPUs, so a page another
    /// vCPU decodes later is seen by the next store).
    /// </summary>
    internal byte* CodeFlag(ulong page) => (byte*)Unsafe.AsPointer(ref _holdsCode[page]);

    /// <summary>Where a RAM page's code generation lives, for a decoded block to re-check it with one load.</summary>
    internal int* CodeGenerationPointer(ulong page) => (int*)Unsafe.AsPointer(ref _codeGeneration[page]);

    /// <summary>Marks a page as holding decoded code and returns its generation.</summary>
    public int MarkCode(ulong page)
    {
        Volatile.Write(ref _holdsCode[page], 1);
        return Volatile.Read(ref _codeGeneration[page]);
    }

    /// <summary>
    /// Called after every store to RAM: if the page holds decoded code, its generation moves on
    /// and every vCPU re-decodes it before running it again.
    /// </summary>
    /// <returns>true when code was invalidated (the writer must end its current block).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool NoteWrite(ulong address, int size)
    {
        var first = address >> PageShift;
        var last = (address + (ulong)size - 1) >> PageShift;
        var hit = _holdsCode[first] != 0 || _holdsCode[last] != 0;
        return hit && InvalidateCode(first, last);
    }

    private bool InvalidateCode(ulong first, ulong last)
    {
        for (var p = first; p <= last; p++)
        {
            if (_holdsCode[p] != 0)
            {
                Volatile.Write(ref _holdsCode[p], 0);
                Interlocked.Increment(ref _codeGeneration[p]);
            }
        }

        return true;
    }

    // ---- atomics (LOCK prefix, XCHG with memory) ----

    /// <summary>
    /// An access that crosses a cache line cannot use a single host atomic reliably; such
    /// split-locked accesses serialise on one VM-wide lock instead (the SDM's bus lock).
    /// </summary>
    public object SplitLock => _splitLock;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CrossesCacheLine(ulong address, int size) => ((address & 63) + (ulong)size) > 64;

    public void Dispose()
    {
        NativeMemory.Free(_ram);
    }
}
