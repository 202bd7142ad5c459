using System.Collections.Concurrent;
using Iced.Intel;
using Serilog;

namespace ActorVm.Hardware.X86;

/// <summary>
/// The one map from Iced <see cref="Code"/> to instruction handler. Each group in
/// <c>Instructions/</c> registers the forms it implements; every other code raises #UD and is
/// logged and counted once per code (<see cref="UnsupportedCodes"/>), never ignored.
/// </summary>
internal static unsafe class InstructionTable
{
    private static readonly ILogger Logger = Log.ForContext(typeof(InstructionTable));
    private static readonly nint UnsupportedHandler = (nint)(delegate*<Cpu, ref Instruction, void>)&RaiseUnsupported;
    private static readonly nint[] Table = Build();

    /// <summary>Unsupported codes hit so far (process-wide), with how often.</summary>
    public static ConcurrentDictionary<Code, long> UnsupportedCodes { get; } = new();

    public static nint Handler(Code code) => Table[(int)code];

    /// <summary>The handler for a decoded instruction: a LOCK prefix where the SDM does not allow one is #UD.</summary>
    public static nint HandlerFor(in Instruction ins) =>
        ins.HasLockPrefix && !Instructions.Atomics.LockAllowed(ins) ? LockUdHandler : Table[(int)ins.Code];

    private static readonly nint LockUdHandler = (nint)(delegate*<Cpu, ref Instruction, void>)&RaiseLockUd;

    private static void RaiseLockUd(Cpu cpu, ref Instruction ins) => throw GuestFault.Ud();

    public static nint Unsupported(Code code) => UnsupportedHandler;

    public static bool IsImplemented(Code code) => Table[(int)code] != UnsupportedHandler;

    private static nint[] Build()
    {
        var table = new nint[(int)Enum.GetValues<Code>().Max() + 1];
        Array.Fill(table, UnsupportedHandler);
        var builder = new Builder(table);
        Instructions.DataMovement.Register(builder);
        Instructions.Arithmetic.Register(builder);
        Instructions.Logic.Register(builder);
        Instructions.ShiftRotate.Register(builder);
        Instructions.BitOps.Register(builder);
        Instructions.ControlFlow.Register(builder);
        Instructions.Stack.Register(builder);
        Instructions.Strings.Register(builder);
        Instructions.FlagOps.Register(builder);
        Instructions.Atomics.Register(builder);
        Instructions.Io.Register(builder);
        Instructions.SystemOps.Register(builder);
        Instructions.Segments.Register(builder);
        Instructions.Simd.Register(builder);
        return table;
    }

    private static void RaiseUnsupported(Cpu cpu, ref Instruction ins)
    {
        if (UnsupportedCodes.AddOrUpdate(ins.Code, 1, (_, n) => n + 1) == 1)
        {
            Logger.Warning("vcpu {Vcpu}: unsupported instruction {Code} at rip 0x{Rip:x}: raising #UD", cpu.Id, ins.Code, ins.IP);
        }

        cpu.UnsupportedInstructions++;
        throw GuestFault.Ud();
    }

    /// <summary>Collects handler registrations; registering a code twice is a programming error.</summary>
    public sealed class Builder(nint[] table)
    {
        public void Add(delegate*<Cpu, ref Instruction, void> handler, params ReadOnlySpan<Code> codes)
        {
            foreach (var code in codes)
            {
                if (table[(int)code] != UnsupportedHandler)
                {
                    throw new InvalidOperationException($"{code} registered twice");
                }

                table[(int)code] = (nint)handler;
            }
        }
    }
}
