using System.Runtime.InteropServices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Runs single x86-64 instructions on the host CPU: a stub in an RWX page loads RAX, RBX, RCX,
/// RDX and the status flags from a <see cref="NativeState"/>, executes the instruction, and
/// stores the registers and RFLAGS back.
/// </summary>
internal static unsafe partial class NativeCode
{
    private const int RegionSize = 1 << 20;
    private static readonly object Gate = new();
    private static byte* _region;
    private static int _used;

    [StructLayout(LayoutKind.Sequential)]
    public struct NativeState
    {
        public ulong Rax, Rbx, Rcx, Rdx, Flags;
    }

    public static bool IsSupported => RuntimeInformation.ProcessArchitecture == Architecture.X64 && OperatingSystem.IsLinux();

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    /// <summary>Builds a native stub around the instruction bytes; returns a callable pointer.</summary>
    public static delegate* unmanaged<NativeState*, void> Compile(byte[] instruction)
    {
        var pre = new Assembler(64);
        pre.push(rbx);
        pre.mov(rax, __qword_ptr[rdi]);
        pre.mov(rbx, __qword_ptr[rdi + 8]);
        pre.mov(rcx, __qword_ptr[rdi + 16]);
        pre.mov(rdx, __qword_ptr[rdi + 24]);
        pre.push(__qword_ptr[rdi + 32]);
        pre.popfq();
        var post = new Assembler(64);
        post.pushfq();
        post.pop(__qword_ptr[rdi + 32]);
        post.mov(__qword_ptr[rdi], rax);
        post.mov(__qword_ptr[rdi + 8], rbx);
        post.mov(__qword_ptr[rdi + 16], rcx);
        post.mov(__qword_ptr[rdi + 24], rdx);
        post.pop(rbx);
        post.cld();
        post.ret();
        var code = new List<byte>();
        code.AddRange(Encode(pre));
        code.AddRange(instruction);
        code.AddRange(Encode(post));
        lock (Gate)
        {
            if (_region == null)
            {
                var p = mmap(0, RegionSize, 7, 0x22, -1, 0);
                if (p == -1)
                {
                    throw new InvalidOperationException("mmap failed: " + Marshal.GetLastPInvokeError());
                }

                _region = (byte*)p;
            }

            if (_used + code.Count > RegionSize)
            {
                throw new InvalidOperationException("native code region full");
            }

            var at = _region + _used;
            for (var i = 0; i < code.Count; i++)
            {
                at[i] = code[i];
            }

            _used += (code.Count + 15) & ~15;
            return (delegate* unmanaged<NativeState*, void>)at;
        }
    }

    private static byte[] Encode(Assembler a)
    {
        var w = new BytesWriter();
        a.Assemble(w, 0);
        return w.ToArray();
    }

    internal sealed class BytesWriter : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}
