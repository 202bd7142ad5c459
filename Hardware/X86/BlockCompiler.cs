using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using Serilog;

namespace ActorVm.Hardware.X86;

/// <summary>
/// A hot block's handler slots composed into one method: <c>int Run(Cpu, ref DecodedInstruction op0, Block, chainUntil)</c>
/// does exactly what <see cref="Cpu"/>'s RunSlots loop does for that block, unrolled, with a
/// direct call to each slot's handler instead of an indirect one, so the JIT can inline the small
/// fast forms into it; when the block's successor is the block itself (a loop) and RunBlocks
/// would follow it, it runs it again without returning (<see cref="Cpu.LoopsAgain"/>).
/// </summary>
internal delegate int CompiledBlock(Cpu cpu, ref DecodedInstruction op0, Block block, long chainUntil);

/// <summary>
/// Compiles hot blocks (<see cref="CompiledBlock"/>) with <see cref="DynamicMethod"/>. The code is
/// keyed by the block's sequence of handler pointers, not by guest address: the operands come from
/// the block's records at run time, so blocks of the same shape share one method across blocks and
/// vCPUs (a 4096-vCPU run compiles each shape once). The cache is process-wide, thread-safe and
/// bounded (<see cref="MaxShapes"/>); a block with a handler <see cref="HandlerMethods"/> does not
/// know, or a shape beyond the bound, stays on the interpreter loop.
/// </summary>
internal static class BlockCompiler
{
    /// <summary>Most distinct shapes compiled per process; later shapes stay interpreted.</summary>
    public const int MaxShapes = 8192;

    /// <summary>The environment variable that overrides <see cref="DefaultThreshold"/> (a negative value turns compilation off).</summary>
    public const string ThresholdVariable = "ACTORVM_BLOCK_COMPILE_THRESHOLD";

    private static readonly ILogger Logger = Log.ForContext(typeof(BlockCompiler));
    private static readonly Lock Gate = new();
    private static readonly Dictionary<Shape, CompiledBlock?> Shapes = [];
    private static readonly int SlotSize = Unsafe.SizeOf<DecodedInstruction>();

    private static readonly FieldInfo RipField = typeof(Cpu).GetField(nameof(Cpu.Rip))!;
    private static readonly MethodInfo LoopsAgainMethod =
        typeof(Cpu).GetMethod(nameof(Cpu.LoopsAgain), BindingFlags.NonPublic | BindingFlags.Instance)!;
    private static readonly FieldInfo NextIpField = typeof(DecodedInstruction).GetField(nameof(DecodedInstruction.NextIp))!;

    private static long _compiled, _notCompilable, _shared;
    private static bool _warnedFull;

    /// <summary>
    /// How many times a block runs through the interpreter loop before it is compiled; 0 compiles
    /// every block on its first run, a negative value never compiles. From
    /// <see cref="ThresholdVariable"/> when set, else <see cref="Threshold"/>.
    /// </summary>
    public static int DefaultThreshold { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable(ThresholdVariable), out var t) ? t : Threshold;

    /// <summary>
    /// The default compile threshold. Compiling costs ≈ 0.2 ms of CPU per slot (measured: 0.7 ms
    /// for 4 slots, 12 ms for 64, the JIT inlining every fast form) and saves ≈ 1 ns per slot and
    /// run of the ≈ 3 ns the interpreter loop takes: a block is compiled once its interpreted runs
    /// have cost about what compiling it costs (≈ 65 k runs, the ski-rental rule), so a block
    /// that never runs that often again costs at most twice what interpreting it would have.
    /// </summary>
    public const int Threshold = 1 << 16;

    /// <summary>Blocks that received compiled code (a new shape or a shared one).</summary>
    public static long Compiled => Interlocked.Read(ref _compiled);

    /// <summary>Of <see cref="Compiled"/>, blocks that reused the code of an earlier block of the same shape.</summary>
    public static long Shared => Interlocked.Read(ref _shared);

    /// <summary>Blocks that stayed interpreted: a handler without a known method, or the shape cache was full.</summary>
    public static long NotCompilable => Interlocked.Read(ref _notCompilable);

    /// <summary>Distinct shapes compiled so far.</summary>
    public static int ShapeCount
    {
        get
        {
            lock (Gate)
            {
                return Shapes.Count;
            }
        }
    }

    /// <summary>
    /// The compiled code for a block's shape, or null when the block cannot be compiled.
    /// <paramref name="loops"/>: the block ends in a branch to its own start, so its method runs it
    /// again while <see cref="Cpu.LoopsAgain"/> (other blocks get no back edge: measured, the
    /// check alone cost the branchy loop a few per cent).
    /// </summary>
    public static CompiledBlock? For(DecodedInstruction[] ops, int count, bool loops = false)
    {
        var handlers = new nint[count];
        for (var i = 0; i < count; i++)
        {
            handlers[i] = ops[i].Handler;
        }

        var shape = new Shape(handlers, loops);
        lock (Gate)
        {
            if (Shapes.TryGetValue(shape, out var known))
            {
                if (known is null)
                {
                    Interlocked.Increment(ref _notCompilable);
                }
                else
                {
                    Interlocked.Increment(ref _compiled);
                    Interlocked.Increment(ref _shared);
                }

                return known;
            }

            if (Shapes.Count >= MaxShapes)
            {
                Interlocked.Increment(ref _notCompilable);
                if (!_warnedFull)
                {
                    _warnedFull = true;
                    Logger.Warning("block compiler: {Max} shapes compiled, later hot blocks stay interpreted", MaxShapes);
                }

                return null;
            }

            // Emitted under the lock: two vCPUs reaching the same new shape get one method (the
            // runtime JIT-compiles it at its first call).
            var code = Emit(handlers, loops);
            Shapes[shape] = code;
            Interlocked.Increment(ref code is null ? ref _notCompilable : ref _compiled);
            Logger.Debug("block compiler: {Slots} slots, loops {Loops}: {Outcome}", count, loops, code is null ? "a handler without a known method, stays interpreted" : "compiled");
            return code;
        }
    }

    /// <summary>
    /// Emits RunSlots unrolled: per slot i, <c>_index = i; Rip = ops[i].NextIp; Handler_i(cpu, ref ops[i]);
    /// if (_breakBlock) return i;</c> (less for register-only slots, see
    /// <see cref="Instructions.RegisterOnlyAttribute"/>), then from the top again while
    /// <see cref="Cpu.LoopsAgain"/>, else <c>return -1</c>. Null when a handler is not a known method.
    /// </summary>
    private static CompiledBlock? Emit(nint[] handlers, bool loops)
    {
        var methods = new MethodInfo[handlers.Length];
        for (var i = 0; i < handlers.Length; i++)
        {
            if (HandlerMethods.Find(handlers[i]) is not { } m)
            {
                return null;
            }

            methods[i] = m;
        }

        // The first parameter is the delegate's (null) target: a delegate closed over its first
        // argument calls the method directly, without the shuffle thunk of an open static one.
        var dm = new DynamicMethod(
            "CompiledBlock" + handlers.Length,
            typeof(int),
            [typeof(object), typeof(Cpu), typeof(DecodedInstruction).MakeByRefType(), typeof(Block), typeof(long)],
            typeof(Cpu),
            skipVisibility: true);
        var il = dm.GetILGenerator();
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stfld, Cpu.BreakBlockField);
        var top = il.DefineLabel();
        il.MarkLabel(top);
        for (var i = 0; i < methods.Length; i++)
        {
            // A register-only fast form cannot fault, exit or end the block and reads no RIP:
            // nothing can observe its slot index or RIP, so only the block's last slot stores
            // RIP (what the next block is looked up by).
            var registerOnly = methods[i].IsDefined(typeof(Instructions.RegisterOnlyAttribute), inherit: false);
            if (!registerOnly)
            {
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldc_I4, i);
                il.Emit(OpCodes.Stfld, Cpu.IndexField);
            }

            if (!registerOnly || i == methods.Length - 1)
            {
                il.Emit(OpCodes.Ldarg_1);
                EmitSlot(il, i);
                il.Emit(OpCodes.Ldfld, NextIpField);
                il.Emit(OpCodes.Stfld, RipField);
            }

            // Generic handlers take the record as the Instruction it starts with (same address).
            il.Emit(OpCodes.Ldarg_1);
            EmitSlot(il, i);
            il.Emit(OpCodes.Call, methods[i]);

            if (registerOnly)
            {
                continue;
            }

            var next = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldfld, Cpu.BreakBlockField);
            il.Emit(OpCodes.Brfalse, next);
            il.Emit(OpCodes.Ldc_I4, i);
            il.Emit(OpCodes.Ret);
            il.MarkLabel(next);
        }

        if (loops)
        {
            // The block ran to its end (the break flag is clear): again while it is its own successor.
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldarg_3);
            il.Emit(OpCodes.Ldarg_S, (byte)4);
            il.Emit(OpCodes.Call, LoopsAgainMethod);
            il.Emit(OpCodes.Brtrue, top);
        }

        il.Emit(OpCodes.Ldc_I4_M1);
        il.Emit(OpCodes.Ret);
        return (CompiledBlock)dm.CreateDelegate(typeof(CompiledBlock), null);
    }

    /// <summary>Pushes <c>ref ops[i]</c>: the first record's reference plus i records.</summary>
    private static void EmitSlot(ILGenerator il, int i)
    {
        il.Emit(OpCodes.Ldarg_2);
        if (i > 0)
        {
            il.Emit(OpCodes.Ldc_I4, i * SlotSize);
            il.Emit(OpCodes.Add);
        }
    }

    /// <summary>A block's handler sequence and whether it loops to itself, compared by value.</summary>
    private sealed class Shape(nint[] handlers, bool loops) : IEquatable<Shape>
    {
        private readonly int _hash = HashCode.Combine(Hash(handlers), loops);

        public bool Equals(Shape? other) =>
            other is not null && loops == other.Loops && handlers.AsSpan().SequenceEqual(other.Handlers);

        private bool Loops => loops;

        public override bool Equals(object? obj) => Equals(obj as Shape);

        public override int GetHashCode() => _hash;

        private nint[] Handlers => handlers;

        private static int Hash(nint[] handlers)
        {
            var h = new HashCode();
            foreach (var p in handlers)
            {
                h.Add(p);
            }

            return h.ToHashCode();
        }
    }
}
