using System.Buffers.Binary;
using Iced.Intel;
using ActorVm.Hardware.Boot;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>How a built kernel is packaged. QEMU's <c>-kernel</c> accepts a.out kludge and ELF32 only.</summary>
public enum KernelFormat
{
    AoutKludge,
    Elf32,
    Elf64,
}

/// <summary>
/// Builds Multiboot v1 kernels from Iced-assembled code. Fixed layout (all identity-mapped):
/// <list type="bullet">
/// <item>0x100000: Multiboot header, then the 32-bit entry code (<see cref="Code32"/>), its helpers and strings;</item>
/// <item>0x108000: 64-bit code after <see cref="EnterLongMode"/> (<see cref="Code64"/>); 0x10C000: strings;</item>
/// <item>0x10F000: GDT (0x08 code32, 0x10 data, 0x18 code64) and the GDTR/IDTR pseudo-descriptors;</item>
/// <item>0x110000: the 64-bit IDT; 0x111000: PML4, PDPT, PD mapping the first 1 GiB with 2 MiB pages;</item>
/// <item>0x114000: variables used by the exception handlers (see the Var* constants); stack below 0x9F000.</item>
/// </list>
/// </summary>
public sealed class MultibootKernelBuilder
{
    public const ulong LoadAddress = 0x100000;
    public const ulong Code64Address = 0x108000;
    public const ulong StringsAddress = 0x10C000;
    public const ulong GdtAddress = 0x10F000;
    public const ulong GdtrAddress = GdtAddress + 0x40;
    public const ulong IdtrAddress = GdtAddress + 0x50;
    public const ulong IdtAddress = 0x110000;
    public const ulong Pml4Address = 0x111000;
    public const ulong VariablesAddress = 0x114000;
    public const ulong ImageEnd = 0x115000;
    public const uint StackTop = 0x9F000;

    /// <summary>Exception-handler variables (qwords): the RIP to resume at after a fault (0: stop), and what the last fault was.</summary>
    public const ulong VarRecover = VariablesAddress, VarLastVector = VariablesAddress + 8, VarLastError = VariablesAddress + 16,
        VarLastCr2 = VariablesAddress + 24, VarExceptionCount = VariablesAddress + 32;

    public const ushort Code32Selector = 0x08, DataSelector = 0x10, Code64Selector = 0x18;

    /// <summary>Debug-exit value written when an exception arrives with no recovery point (status 0xFD).</summary>
    public const uint UnexpectedExceptionExit = 0x7E;

    private const int HeaderSize = 32;
    private bool _exceptionHandlers;

    public MultibootKernelBuilder(uint bssBytes = 0)
    {
        BssBytes = bssBytes;
        Strings = new StringPool(StringsAddress, (int)(GdtAddress - StringsAddress));
        Code32 = new GuestAsm(32, LoadAddress, Strings);

        // Header placeholder (patched in Build): magic, flags, checksum, a.out kludge addresses.
        for (var i = 0; i < HeaderSize / 4; i++)
        {
            Code32.A.dd(0u);
        }

        Code32.A.mov(esp, StackTop);
    }

    /// <summary>Zeroed memory after the image (ELF p_memsz / a.out bss_end_addr), for loader tests.</summary>
    public uint BssBytes { get; }

    /// <summary>Strings printed by both sections.</summary>
    public StringPool Strings { get; }

    /// <summary>The 32-bit entry section: the kernel starts at its first instruction in Multiboot's entry state.</summary>
    public GuestAsm Code32 { get; }

    /// <summary>The 64-bit section, present after <see cref="EnterLongMode"/>.</summary>
    public GuestAsm? Code64 { get; private set; }

    public static uint EntryAddress => (uint)LoadAddress + HeaderSize;

    /// <summary>
    /// Emits, in <see cref="Code32"/>, the switch to 64-bit long mode (SDM 9.8.5: PAE, CR3, EFER.LME,
    /// CR0.PG, far jump to a 64-bit code segment) and returns the 64-bit section, whose code runs
    /// with flat data segments and the stack reloaded.
    /// </summary>
    public GuestAsm EnterLongMode()
    {
        if (Code64 is not null)
        {
            throw new InvalidOperationException("EnterLongMode called twice");
        }

        var a = Code32.A;
        a.lgdt(__[(uint)GdtrAddress]);
        a.mov(ax, DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(eax, cr4);
        a.or(eax, 0x20); // CR4.PAE
        a.mov(cr4, eax);
        a.mov(eax, (uint)Pml4Address);
        a.mov(cr3, eax);
        a.mov(ecx, 0xC0000080); // IA32_EFER
        a.rdmsr();
        a.or(eax, 0x100); // LME
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x80000000)); // PG
        a.mov(cr0, eax);
        a.jmp(Code64Selector, (uint)Code64Address);

        Code64 = new GuestAsm(64, Code64Address, Strings);
        var b = Code64.A;
        b.mov(ax, DataSelector);
        b.mov(ds, ax);
        b.mov(es, ax);
        b.mov(ss, ax);
        b.mov(fs, ax);
        b.mov(gs, ax);
        b.mov(esp, StackTop);
        return Code64;
    }

    /// <summary>
    /// Loads a 64-bit IDT whose vectors 0-31 go to a handler that records vector, error code and
    /// CR2 in the Var* variables, prints <c>exception 0x.. error 0x.. cr2 0x..</c>, and resumes at
    /// <see cref="VarRecover"/> (cleared on use) or, with none set, stops the VM with
    /// <see cref="UnexpectedExceptionExit"/>.
    /// </summary>
    public void InstallExceptionHandlers()
    {
        var c = Code64 ?? throw new InvalidOperationException("call EnterLongMode first");
        c.A.lidt(__[(uint)IdtrAddress]);
        _exceptionHandlers = true;
    }

    /// <summary>
    /// Emits code that arms a recovery point, runs <paramref name="faulting"/>, and checks that it
    /// raised <paramref name="vector"/> with <paramref name="errorCode"/> (and CR2 when given).
    /// Prints "<paramref name="name"/> ok" or "<paramref name="name"/> FAILED" and counts failures in R13D.
    /// </summary>
    public void ExpectFault64(string name, Action<Assembler> faulting, byte vector, uint errorCode, ulong? cr2 = null)
    {
        var c = Code64 ?? throw new InvalidOperationException("call EnterLongMode first");
        var a = c.A;
        var recover = a.CreateLabel();
        var bad = a.CreateLabel();
        var after = a.CreateLabel();
        a.lea(rax, __[recover]);
        a.mov(__qword_ptr[(uint)VarRecover], rax);
        faulting(a);
        c.Print($"{name}: no fault\n");
        a.jmp(bad);
        a.Label(ref recover);
        a.cmp(__qword_ptr[(uint)VarLastVector], vector);
        a.jne(bad);
        a.cmp(__qword_ptr[(uint)VarLastError], (int)errorCode);
        a.jne(bad);
        if (cr2 is { } expected)
        {
            a.mov(rax, expected);
            a.cmp(__qword_ptr[(uint)VarLastCr2], rax);
            a.jne(bad);
        }

        c.Print($"{name} ok\n");
        a.jmp(after);
        a.Label(ref bad);
        c.Print($"{name} FAILED\n");
        a.inc(r13d);
        a.Label(ref after);
    }

    /// <summary>Assembles everything and packages the kernel.</summary>
    public byte[] Build(KernelFormat format = KernelFormat.AoutKludge)
    {
        var idt = new byte[4096];
        if (_exceptionHandlers)
        {
            EmitExceptionHandlers(out var stubs);
            var (_, result) = Code64!.Finish();
            for (var v = 0; v < stubs.Length; v++)
            {
                var target = result.GetLabelRIP(stubs[v]);
                WriteGate64(idt.AsSpan(v * 16), target);
            }
        }

        var (code32, _) = Code32.Finish();
        var image = new byte[ImageEnd - LoadAddress];
        if (code32.Length > (int)(Code64Address - LoadAddress))
        {
            throw new InvalidOperationException($"32-bit code is {code32.Length} bytes, more than its 0x8000-byte window");
        }

        code32.CopyTo(image, 0);
        if (Code64 is not null)
        {
            var (code64, _) = Code64.Finish();
            if (code64.Length > (int)(StringsAddress - Code64Address))
            {
                throw new InvalidOperationException($"64-bit code is {code64.Length} bytes, more than its 0x4000-byte window");
            }

            code64.CopyTo(image, (int)(Code64Address - LoadAddress));
        }

        Strings.ToArray().CopyTo(image, (int)(StringsAddress - LoadAddress));
        WriteTables(image, idt);
        var flags = format == KernelFormat.AoutKludge ? MultibootHeader.AddressFields | MultibootHeader.MemoryInfo : MultibootHeader.MemoryInfo;
        var h = image.AsSpan(0, HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(h, MultibootHeader.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], unchecked(0u - MultibootHeader.Magic - flags));
        if (format == KernelFormat.AoutKludge)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(h[12..], (uint)LoadAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)LoadAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)ImageEnd);
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], (uint)ImageEnd + BssBytes);
            BinaryPrimitives.WriteUInt32LittleEndian(h[28..], EntryAddress);
            return image;
        }

        return ElfWriter.Write(format == KernelFormat.Elf64, image, LoadAddress, (ulong)image.Length + BssBytes, EntryAddress);
    }

    private static void WriteTables(byte[] image, byte[] idt)
    {
        var gdt = image.AsSpan((int)(GdtAddress - LoadAddress));
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[8..], 0x00CF9B000000FFFF);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[16..], 0x00CF93000000FFFF);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[24..], 0x00AF9B000000FFFF);
        var gdtr = image.AsSpan((int)(GdtrAddress - LoadAddress));
        BinaryPrimitives.WriteUInt16LittleEndian(gdtr, 31);
        BinaryPrimitives.WriteUInt64LittleEndian(gdtr[2..], GdtAddress);
        var idtr = image.AsSpan((int)(IdtrAddress - LoadAddress));
        BinaryPrimitives.WriteUInt16LittleEndian(idtr, 4095);
        BinaryPrimitives.WriteUInt64LittleEndian(idtr[2..], IdtAddress);
        idt.CopyTo(image, (int)(IdtAddress - LoadAddress));

        var pt = image.AsSpan((int)(Pml4Address - LoadAddress));
        BinaryPrimitives.WriteUInt64LittleEndian(pt, (Pml4Address + 0x1000) | 3);
        BinaryPrimitives.WriteUInt64LittleEndian(pt[0x1000..], (Pml4Address + 0x2000) | 3);
        for (var i = 0; i < 512; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(pt[(0x2000 + (i * 8))..], ((ulong)i << 21) | 0x83);
        }
    }

    /// <summary>A 64-bit interrupt gate (SDM figure 6-8): present, DPL 0, type 0xE, selector 0x18.</summary>
    private static void WriteGate64(Span<byte> gate, ulong target)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(gate, (ushort)target);
        BinaryPrimitives.WriteUInt16LittleEndian(gate[2..], Code64Selector);
        gate[4] = 0;
        gate[5] = 0x8E;
        BinaryPrimitives.WriteUInt16LittleEndian(gate[6..], (ushort)(target >> 16));
        BinaryPrimitives.WriteUInt32LittleEndian(gate[8..], (uint)(target >> 32));
    }

    private static bool HasErrorCode(int vector) => vector is 8 or (>= 10 and <= 14) or 17 or 21 or 29 or 30;

    private void EmitExceptionHandlers(out Label[] stubs)
    {
        var c = Code64!;
        var a = c.A;
        var common = a.CreateLabel();
        stubs = new Label[32];
        for (var v = 0; v < 32; v++)
        {
            stubs[v] = a.CreateLabel();
            a.Label(ref stubs[v]);
            if (!HasErrorCode(v))
            {
                a.push(0);
            }

            a.push(v);
            a.jmp(common);
        }

        // Stack: [rsp] vector, [rsp+8] error code, [rsp+16] RIP, CS, RFLAGS, RSP, SS.
        a.Label(ref common);
        a.mov(rax, __qword_ptr[rsp]);
        a.mov(__qword_ptr[(uint)VarLastVector], rax);
        a.mov(rax, __qword_ptr[rsp + 8]);
        a.mov(__qword_ptr[(uint)VarLastError], rax);
        a.mov(rax, cr2);
        a.mov(__qword_ptr[(uint)VarLastCr2], rax);
        a.inc(__qword_ptr[(uint)VarExceptionCount]);
        c.Print("exception 0x");
        a.mov(eax, __dword_ptr[(uint)VarLastVector]);
        c.PrintHexEax();
        c.Print(" error 0x");
        a.mov(eax, __dword_ptr[(uint)VarLastError]);
        c.PrintHexEax();
        c.Print(" cr2 0x");
        a.mov(eax, __dword_ptr[(uint)VarLastCr2]);
        c.PrintHexEax();
        c.Print("\n");
        var fatal = a.CreateLabel();
        a.mov(rax, __qword_ptr[(uint)VarRecover]);
        a.test(rax, rax);
        a.jz(fatal);
        a.mov(__qword_ptr[rsp + 16], rax);
        a.mov(__qword_ptr[(uint)VarRecover], 0);
        a.add(rsp, 16);
        a.iretq();
        a.Label(ref fatal);
        c.Print("unexpected exception: stopping\n");
        c.DebugExit(UnexpectedExceptionExit);
    }
}
