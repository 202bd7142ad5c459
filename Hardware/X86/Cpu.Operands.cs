using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86;

/// <summary>
/// Operand access for instruction handlers, driven by Iced's decoded operand kinds. A
/// destination that is read and written (ADD r/m, r) is addressed once through
/// <see cref="ReadDest"/>, which returns the linear address for the matching <see cref="WriteDest"/>.
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>Marks a register destination in <see cref="ReadDest"/>/<see cref="WriteDest"/>.</summary>
    public const ulong RegisterOperand = ulong.MaxValue;

    /// <summary>Operand size in bytes of operand 0 (register width or memory size).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int OpSize(ref Instruction ins, int n = 0) => ins.GetOpKind(n) switch
    {
        OpKind.Register => RegisterWidth(ins.GetOpRegister(n)),
        OpKind.Memory => ins.MemorySize.GetSize(),
        _ => ImmediateSize(ins.GetOpKind(n)),
    };

    private static int ImmediateSize(OpKind kind) => kind switch
    {
        OpKind.Immediate8 => 1,
        OpKind.Immediate16 or OpKind.Immediate8to16 => 2,
        OpKind.Immediate32 or OpKind.Immediate8to32 => 4,
        _ => 8,
    };

    /// <summary>Address size in bytes of the memory operand (from its base/index registers, else the mode and 67h).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int AddressSize(ref Instruction ins)
    {
        var b = ins.MemoryBase;
        if (b != Register.None)
        {
            return b is Register.RIP ? 8 : b is Register.EIP ? 4 : RegisterWidth(b);
        }

        var x = ins.MemoryIndex;
        if (x != Register.None)
        {
            return RegisterWidth(x);
        }

        var d = ins.MemoryDisplSize;
        return d is 2 or 4 or 8 ? d : Bitness / 8;
    }

    /// <summary>Effective address (segment offset) of the memory operand, wrapped to the address size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong EffectiveAddress(ref Instruction ins)
    {
        if (ins.IsIPRelativeMemoryOperand)
        {
            var target = ins.IPRelativeMemoryAddress;
            return ins.MemoryBase == Register.EIP ? (uint)target : target;
        }

        var ea = ins.MemoryDisplacement64;
        var b = ins.MemoryBase;
        if (b != Register.None)
        {
            ea += ReadReg(b);
        }

        var x = ins.MemoryIndex;
        if (x != Register.None)
        {
            ea += ReadReg(x) * (ulong)ins.MemoryIndexScale;
        }

        return AddressSize(ref ins) switch
        {
            2 => (ushort)ea,
            4 => (uint)ea,
            _ => ea,
        };
    }

    /// <summary>Linear address of the memory operand (segment base applied).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong MemoryLinear(ref Instruction ins) => Linear((SegReg)(ins.MemorySegment - Register.ES), EffectiveAddress(ref ins));

    /// <summary>Reads operand <paramref name="n"/> truncated to <paramref name="size"/> bytes (immediates sign-extended then truncated).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadOp(ref Instruction ins, int n, int size)
    {
        switch (ins.GetOpKind(n))
        {
            case OpKind.Register:
                return ReadReg(ins.GetOpRegister(n));
            case OpKind.Memory:
                return ReadLinear(MemoryLinear(ref ins), size);
            default:
                return ins.GetImmediate(n) & SizeMask(size);
        }
    }

    /// <summary>Writes operand <paramref name="n"/> (a register or memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteOp(ref Instruction ins, int n, int size, ulong value)
    {
        if (ins.GetOpKind(n) == OpKind.Register)
        {
            WriteReg(ins.GetOpRegister(n), value);
        }
        else
        {
            WriteLinear(MemoryLinear(ref ins), size, value);
        }
    }

    /// <summary>Reads operand 0 for a read-modify-write; <paramref name="la"/> receives its linear address or <see cref="RegisterOperand"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadDest(ref Instruction ins, int size, out ulong la)
    {
        if (ins.Op0Kind == OpKind.Register)
        {
            la = RegisterOperand;
            return ReadReg(ins.Op0Register);
        }

        la = MemoryLinear(ref ins);
        return ReadLinear(la, size);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteDest(ref Instruction ins, int size, ulong la, ulong value)
    {
        if (la == RegisterOperand)
        {
            WriteReg(ins.Op0Register, value);
        }
        else
        {
            WriteLinear(la, size, value);
        }
    }

    /// <summary>
    /// Atomic compare-exchange on guest memory (LOCK prefix, XCHG, CMPXCHG). Returns the value
    /// found; the store happened iff it equals <paramref name="expected"/>. An access that
    /// crosses a cache line or lands outside RAM takes the VM's split lock instead.
    /// </summary>
    public ulong CompareExchangeLinear(ulong la, int size, ulong expected, ulong value)
    {
        var p = AtomicPointer(la, size, out var pa);
        if (p != null && !ActorVm.Hardware.Memory.GuestMemory.CrossesCacheLine(pa, size))
        {
            ulong found = size switch
            {
                1 => Interlocked.CompareExchange(ref *p, (byte)value, (byte)expected),
                2 => Interlocked.CompareExchange(ref *(ushort*)p, (ushort)value, (ushort)expected),
                4 => Interlocked.CompareExchange(ref *(uint*)p, (uint)value, (uint)expected),
                _ => Interlocked.CompareExchange(ref *(ulong*)p, value, expected),
            };
            if (found == expected && Memory.NoteWrite(pa, size))
            {
                _breakBlock = true;
            }

            return found;
        }

        lock (Memory.SplitLock)
        {
            var found = ReadLinear(la, size);
            if (found == expected)
            {
                WriteLinear(la, size, value);
            }

            return found;
        }
    }

    /// <summary>
    /// A locked read-modify-write: retries <paramref name="op"/> until the compare-exchange
    /// succeeds and returns the old value. Without LOCK on a register or plain memory, use
    /// ReadDest/WriteDest instead.
    /// </summary>
    public ulong AtomicUpdate(ulong la, int size, ulong operand, delegate*<ulong, ulong, int, ulong> op)
    {
        while (true)
        {
            var old = ReadLinear(la, size);
            var updated = op(old, operand, size) & SizeMask(size);
            if (CompareExchangeLinear(la, size, old, updated) == old)
            {
                return old;
            }
        }
    }
}
