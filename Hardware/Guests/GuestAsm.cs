using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>
/// One section of guest code (32- or 64-bit) assembled with Iced at a fixed physical address,
/// with helpers for what test kernels do: print to COM1 polling LSR.THRE, print hex numbers,
/// leave through the debug-exit port. Helper subroutines (putc/puts/puthex) and string data are
/// emitted once, after the section's code, by <see cref="Finish"/>; strings live in a shared <see cref="StringPool"/>.
/// Register use: putc clobbers EAX/EDX; puts clobbers EAX/EDX/ESI; puthex clobbers EAX/EBX/ECX/EDX.
/// </summary>
public sealed class GuestAsm
{
    private readonly StringPool _strings;
    private Label _putc, _puts, _puthex;
    private (byte[] Bytes, AssemblerResult Result)? _finished;

    public GuestAsm(int bitness, ulong address, StringPool strings)
    {
        _strings = strings;
        Bitness = bitness;
        Address = address;
        A = new Assembler(bitness);
        _putc = A.CreateLabel("putc");
        _puts = A.CreateLabel("puts");
        _puthex = A.CreateLabel("puthex");
    }

    public int Bitness { get; }

    public ulong Address { get; }

    /// <summary>The underlying Iced assembler, for the program's own instructions.</summary>
    public Assembler A { get; }

    /// <summary>Prints a string on COM1 (the string goes to the kernel's string pool).</summary>
    public void Print(string text)
    {
        A.mov(esi, _strings.Add(text));
        A.call(_puts);
    }

    /// <summary>Prints the zero-terminated string ESI points to (e.g. the Multiboot command line).</summary>
    public void PrintStringAtEsi() => A.call(_puts);

    /// <summary>Prints EAX as eight hex digits.</summary>
    public void PrintHexEax() => A.call(_puthex);

    /// <summary>Prints a 32-bit register as eight hex digits (clobbers EAX/EBX/ECX/EDX).</summary>
    public void PrintHex(AssemblerRegister32 reg)
    {
        if (reg != eax)
        {
            A.mov(eax, reg);
        }

        A.call(_puthex);
    }

    /// <summary>Writes <paramref name="value"/> to the debug-exit port (status (value &lt;&lt; 1) | 1), then halts forever.</summary>
    public void DebugExit(uint value)
    {
        A.mov(eax, value);
        DebugExitEax();
    }

    /// <summary>Writes EAX to the debug-exit port, then halts forever.</summary>
    public void DebugExitEax()
    {
        A.mov(dx, Devices.DebugExit.DefaultPort);
        A.@out(dx, eax);
        HaltForever();
    }

    public void HaltForever()
    {
        var l = A.CreateLabel();
        A.Label(ref l);
        A.hlt();
        A.jmp(l);
    }

    /// <summary>Emits the helper subroutines and string data; returns the section's bytes and the result for label addresses.</summary>
    public (byte[] Bytes, AssemblerResult Result) Finish()
    {
        if (_finished is { } done)
        {
            return done;
        }

        EmitHelpers();
        var writer = new ByteWriter();
        var result = A.Assemble(writer, Address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        _finished = (writer.ToArray(), result);
        return _finished.Value;
    }

    private void EmitHelpers()
    {
        // putc: AL = character. Polls LSR.THRE (bit 5) as a polling driver must.
        A.Label(ref _putc);
        A.mov(ah, al);
        var wait = A.CreateLabel();
        A.Label(ref wait);
        A.mov(dx, Devices.Uart16550.Com1 + 5);
        A.@in(al, dx);
        A.test(al, 0x20);
        A.jz(wait);
        A.mov(al, ah);
        A.mov(dx, Devices.Uart16550.Com1);
        A.@out(dx, al);
        A.ret();

        // puts: ESI = zero-terminated string.
        A.Label(ref _puts);
        var done = A.CreateLabel();
        if (Bitness == 64)
        {
            A.mov(al, __byte_ptr[rsi]);
        }
        else
        {
            A.mov(al, __byte_ptr[esi]);
        }

        A.test(al, al);
        A.jz(done);
        A.call(_putc);
        A.inc(esi);
        A.jmp(_puts);
        A.Label(ref done);
        A.ret();

        // puthex: EAX = value, printed as eight lower-case hex digits.
        A.Label(ref _puthex);
        A.mov(ebx, eax);
        A.mov(ecx, 8);
        var digit = A.CreateLabel();
        var number = A.CreateLabel();
        A.Label(ref digit);
        A.rol(ebx, 4);
        A.mov(eax, ebx);
        A.and(eax, 0xF);
        A.cmp(al, 10);
        A.jb(number);
        A.add(al, 'a' - '0' - 10);
        A.Label(ref number);
        A.add(al, (int)'0');
        A.call(_putc);
        A.dec(ecx);
        A.jnz(digit);
        A.ret();
    }

    private sealed class ByteWriter : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}

/// <summary>Zero-terminated ASCII strings at fixed guest-physical addresses, shared by a kernel's sections.</summary>
public sealed class StringPool(ulong address, int capacity)
{
    private readonly List<byte> _bytes = [];

    public ulong Address { get; } = address;

    /// <summary>Adds a string and returns its guest-physical address.</summary>
    public uint Add(string text)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(text);
        if (_bytes.Count + bytes.Length + 1 > capacity)
        {
            throw new InvalidOperationException($"string pool full ({capacity} bytes)");
        }

        var at = (uint)(Address + (ulong)_bytes.Count);
        _bytes.AddRange(bytes);
        _bytes.Add(0);
        return at;
    }

    public byte[] ToArray() => [.. _bytes];
}
