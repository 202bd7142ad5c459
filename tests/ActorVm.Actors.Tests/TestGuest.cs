using ActorVm.Hardware;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.X86;
using Iced.Intel;
using Serilog.Core;
using Serilog.Events;

namespace ActorVm.Actors.Tests;

/// <summary>Real-mode guests assembled with Iced, loaded straight into a machine (no firmware).</summary>
public static class TestGuest
{
    public const ushort CodeBase = 0x1000;
    public const ushort StackTop = 0x7000;

    public static byte[] Assemble16(ulong address, Action<Assembler> build)
    {
        var asm = new Assembler(16);
        build(asm);
        var writer = new BytesWriter();
        asm.Assemble(writer, address);
        return [.. writer.Bytes];
    }

    /// <summary>Loads <paramref name="build"/> at <see cref="CodeBase"/> and starts <paramref name="cpu"/> there in real mode.</summary>
    public static void LoadReal(Machine machine, int cpu, Action<Assembler> build, ushort at = CodeBase)
    {
        machine.Memory.WriteBytes(at, Assemble16(at, build));
        var c = machine.Cpus[cpu];
        for (var s = 0; s < 6; s++)
        {
            c.Seg[s] = Segment.Real(0, s == (int)SegReg.CS ? (ushort)0x9B : (ushort)0x93);
        }

        c.Gpr[Cpu.RSP] = StackTop;
        c.Rip = at;
        c.UpdateMode();
    }

    /// <summary>Points IVT entry <paramref name="vector"/> at 0000:<paramref name="handler"/> and assembles the handler there.</summary>
    public static void Handler(Machine machine, byte vector, ushort handler, Action<Assembler> build)
    {
        machine.Memory.Write32((ulong)vector * 4, handler);
        machine.Memory.WriteBytes(handler, Assemble16(handler, build));
    }

    /// <summary>WRMSR ECX, EDX:EAX with constants.</summary>
    public static void Wrmsr(this Assembler a, uint index, ulong value)
    {
        a.mov(AssemblerRegisters.ecx, index);
        a.mov(AssemblerRegisters.eax, (uint)value);
        a.mov(AssemblerRegisters.edx, (uint)(value >> 32));
        a.wrmsr();
    }

    /// <summary>x2APIC on (IA32_APIC_BASE.EXTD), software-enabled through SVR.</summary>
    public static void EnableX2Apic(this Assembler a, bool bsp)
    {
        a.Wrmsr(Msr.ApicBase, 0xFEE00000UL | (1 << 11) | (1 << 10) | (bsp ? 1UL << 8 : 0));
        a.Wrmsr(0x80F, 0x1FF);
    }

    /// <summary>An x2APIC EOI (WRMSR 0x80B, 0).</summary>
    public static void Eoi(this Assembler a) => a.Wrmsr(0x80B, 0);

    private sealed class BytesWriter : CodeWriter
    {
        public List<byte> Bytes { get; } = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}

/// <summary>Records every OUT to its ports.</summary>
public sealed class RecordingPorts : IIoDevice
{
    private readonly List<(ushort Port, uint Value)> _writes = [];

    public IReadOnlyList<(ushort Port, uint Value)> Writes
    {
        get
        {
            lock (_writes)
            {
                return [.. _writes];
            }
        }
    }

    public int Count(ushort port) => Writes.Count(w => w.Port == port);

    public uint In(ushort port, int size) => 0;

    public void Out(ushort port, int size, uint value)
    {
        lock (_writes)
        {
            _writes.Add((port, value));
        }
    }
}

/// <summary>Collects rendered trace lines.</summary>
public sealed class TraceSink : ILogEventSink
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public void Emit(LogEvent logEvent)
    {
        lock (_lines)
        {
            _lines.Add(logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    public Serilog.ILogger Logger() => new Serilog.LoggerConfiguration().MinimumLevel.Verbose().WriteTo.Sink(this).CreateLogger();
}
