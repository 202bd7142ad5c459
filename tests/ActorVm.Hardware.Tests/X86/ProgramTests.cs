using ActorVm.Hardware.Devices;
using ActorVm.Hardware.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>Small guest programs per instruction group, run through <see cref="CpuHarness"/>.</summary>
public class ProgramTests
{
    [Fact]
    public void OverlappingMoveCopiesBackwardsWithStdRepMovsb()
    {
        using var h = CpuHarness.Create(32);
        var text = "ABCDEFGHIJ"u8.ToArray();
        h.LoadBytes(0x2000, text);

        // memmove(0x2003, 0x2000, 10): overlapping upwards, so copy from the end with DF=1.
        h.Load(a =>
        {
            a.mov(esi, 0x2000 + 9);
            a.mov(edi, 0x2003 + 9);
            a.mov(ecx, 10);
            a.std();
            a.rep.movsb();
            a.cld();
            a.hlt();
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal("ABCABCDEFGHIJ"u8.ToArray(), h.Machine.Memory.ReadBytes(0x2000, 13));
        Assert.Equal(0x2000u - 1, h.Cpu.Gpr[Cpu.RSI]);
        Assert.Equal(0u, h.Cpu.Gpr[Cpu.RCX]);
        Assert.False(h.Cpu.DF);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(64)]
    public void RecursiveFibonacciThroughCallAndRet(int bitness)
    {
        using var h = CpuHarness.Create(bitness);
        h.Load(a =>
        {
            var fib = a.CreateLabel();
            var small = a.CreateLabel();
            switch (bitness)
            {
                case 16:
                    a.mov(ax, 15);
                    a.call(fib);
                    a.hlt();
                    a.Label(ref fib);      // ax = fib(ax), clobbers bx/cx
                    a.cmp(ax, 2);
                    a.jb(small);
                    a.push(ax);
                    a.dec(ax);
                    a.call(fib);
                    a.pop(cx);
                    a.push(ax);
                    a.mov(ax, cx);
                    a.sub(ax, 2);
                    a.call(fib);
                    a.pop(bx);
                    a.add(ax, bx);
                    a.Label(ref small);
                    a.ret();
                    break;
                case 32:
                    a.mov(eax, 20);
                    a.call(fib);
                    a.hlt();
                    a.Label(ref fib);
                    a.cmp(eax, 2);
                    a.jb(small);
                    a.push(eax);
                    a.dec(eax);
                    a.call(fib);
                    a.pop(ecx);
                    a.push(eax);
                    a.lea(eax, __dword_ptr[ecx - 2]);
                    a.call(fib);
                    a.pop(ebx);
                    a.add(eax, ebx);
                    a.Label(ref small);
                    a.ret();
                    break;
                default:
                    a.mov(rax, 20);
                    a.call(fib);
                    a.hlt();
                    a.Label(ref fib);
                    a.cmp(rax, 2);
                    a.jb(small);
                    a.push(rax);
                    a.dec(rax);
                    a.call(fib);
                    a.pop(rcx);
                    a.push(rax);
                    a.lea(rax, __qword_ptr[rcx - 2]);
                    a.call(fib);
                    a.pop(rbx);
                    a.add(rax, rbx);
                    a.Label(ref small);
                    a.ret();
                    break;
            }
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(bitness == 16 ? 610UL : 6765UL, h.Cpu.Gpr[Cpu.RAX] & (bitness == 16 ? 0xFFFFUL : ulong.MaxValue));
        Assert.Equal(CpuHarness.StackTop, h.Cpu.Gpr[Cpu.RSP]);
    }

    [Fact]
    public void EnterLeaveFrameAndLoopSumAnArray()
    {
        using var h = CpuHarness.Create(64);
        for (ulong i = 0; i < 100; i++)
        {
            h.Machine.Memory.Write64(0x2000 + (i * 8), i + 1);
        }

        h.Load(a =>
        {
            var top = a.CreateLabel();
            a.mov(rbp, 0x1234);
            a.enter(32, 0);
            a.xor(eax, eax);
            a.mov(ecx, 100);
            a.mov(rsi, 0x2000);
            a.Label(ref top);
            a.add(rax, __qword_ptr[rsi + rcx * 8 - 8]);
            a.loop(top);
            a.mov(__qword_ptr[rbp - 8], rax);
            a.leave();
            a.hlt();
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(5050UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(5050UL, h.Machine.Memory.Read64(CpuHarness.StackTop - 16));
        Assert.Equal(0x1234UL, h.Cpu.Gpr[Cpu.RBP]);
        Assert.Equal(CpuHarness.StackTop, h.Cpu.Gpr[Cpu.RSP]);
    }

    [Fact]
    public void LockXaddCounterLosesNoUpdatesAcrossTwoVcpusOnTwoThreads()
    {
        const int perCpu = 200_000;
        const ulong counter = 0x3000;
        using var h = CpuHarness.CreateSmp(64, 2);
        h.Load(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, perCpu);
            a.Label(ref top);
            a.mov(eax, 1);
            a.@lock.xadd(__qword_ptr[counter], rax);
            a.@lock.inc(__dword_ptr[counter + 8]);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        });
        var cpus = h.Machine.Cpus;
        cpus[1].Rip = CpuHarness.CodeBase;
        cpus[1].Gpr[Cpu.RSP] = CpuHarness.StackTop - 0x800;

        var exits = new VmExit[2];
        var threads = new[] { 0, 1 }.Select(i => new Thread(() => exits[i] = h.Run(cpus[i], 100_000_000))).ToArray();
        foreach (var t in threads)
        {
            t.Start();
        }

        foreach (var t in threads)
        {
            t.Join();
        }

        Assert.All(exits, e => Assert.Equal(ExitReason.Hlt, e.Reason));
        Assert.Equal(2UL * perCpu, h.Machine.Memory.Read64(counter));
        Assert.Equal(2U * perCpu, h.Machine.Memory.Read32(counter + 8));
    }

    [Fact]
    public void RepOutsbAndRepInsbExitOncePerElementAndKeepRegistersConsistent()
    {
        using var h = CpuHarness.Create(32);
        var port = new Port();
        h.Machine.Io.Register(0xE9, 1, port);
        h.LoadBytes(0x2000, "hello"u8.ToArray());
        h.Load(a =>
        {
            a.mov(dx, 0xE9);
            a.mov(esi, 0x2000);
            a.mov(ecx, 5);
            a.rep.outsb();
            a.mov(edi, 0x3000);
            a.mov(ecx, 3);
            a.rep.insb();
            a.std();
            a.mov(edi, 0x3010);
            a.insb();
            a.hlt();
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString([.. port.Written]));
        Assert.Equal(new byte[] { 1, 2, 3 }, h.Machine.Memory.ReadBytes(0x3000, 3));
        Assert.Equal(4, h.Machine.Memory.Read8(0x3010));
        Assert.Equal(0x2005UL, h.Cpu.Gpr[Cpu.RSI]);
        Assert.Equal(0x300FUL, h.Cpu.Gpr[Cpu.RDI]);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
    }

    [Fact]
    public void RepOutsExitQualificationCarriesStringAndRepBits()
    {
        using var h = CpuHarness.Create(64);
        h.LoadBytes(0x2000, [0x41, 0x42]);
        h.Load(a =>
        {
            a.mov(dx, 0x80);
            a.mov(esi, 0x2000);
            a.mov(ecx, 2);
            a.rep.outsb();
            a.hlt();
        });

        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: 100));
        Assert.Equal(ExitReason.IoInstruction, exit.Reason);
        Assert.True(exit.IoString && exit.IoRep && !exit.IoIn);
        Assert.Equal((ushort)0x80, exit.Port);
        Assert.Equal(0x41UL, exit.Value);
        Assert.Equal(0x2000UL, h.Cpu.Gpr[Cpu.RSI]);

        var next = h.Cpu.Complete();
        Assert.NotNull(next);
        Assert.Equal(0x42UL, next.Value.Value);
        Assert.Equal(0x2001UL, h.Cpu.Gpr[Cpu.RSI]);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Null(h.Cpu.Complete());
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
    }

    [Fact]
    public void StringSourceHonoursTheSegmentOverride()
    {
        using var h = CpuHarness.Create(32);
        h.Cpu.Seg[(int)SegReg.FS].Base = 0x1000;
        h.LoadBytes(0x3000, [1, 2, 3, 4]);
        h.Load(a =>
        {
            a.mov(esi, 0x2000);
            a.mov(edi, 0x4000);
            a.mov(ecx, 4);
            a.db(0xF3, 0x64, 0xA4); // rep movsb with an FS override on the source
            a.hlt();
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, h.Machine.Memory.ReadBytes(0x4000, 4));
    }

    [Theory]
    [InlineData(0, 0, true, true)]   // CPL 0: IF and IOPL both change
    [InlineData(3, 0, false, false)] // CPL 3 > IOPL 0: IF silently kept, IOPL kept
    [InlineData(3, 3, true, false)]  // CPL 3 = IOPL 3: IF changes, IOPL kept
    public void PopfHonoursCplAndIopl(int cpl, int iopl, bool ifChanges, bool ioplChanges)
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            a.push(0x1202 | 0x0C5); // IF, IOPL=1, some status flags
            a.popfd();
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.jmp(spin); // HLT would #GP at CPL 3; the budget ends the run here
        });
        h.Cpu.SetFlagsRaw(2 | ((ulong)iopl << 12));
        h.Cpu.Seg[(int)SegReg.CS].Selector |= (ushort)cpl;
        h.Cpu.Seg[(int)SegReg.CS].Attributes = (ushort)((h.Cpu.Seg[(int)SegReg.CS].Attributes & ~0x60) | (cpl << 5));
        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: 10));

        Assert.NotEqual(ExitReason.TripleFault, exit.Reason);
        var f = h.Cpu.Flags;
        Assert.True((f & 0xC5) == 0xC5, $"flags {f:x} after {exit.Reason}, rip {h.Cpu.Rip:x}");
        Assert.Equal(ifChanges, (f & Rflags.IF) != 0);
        Assert.Equal(ioplChanges ? 1 : iopl, h.Cpu.Iopl);
    }

    [Fact]
    public void LongRepStosbYieldsAtChunkBoundariesAndFinishes()
    {
        using var h = CpuHarness.Create(64);
        h.Load(a =>
        {
            a.mov(edi, 0x100000);
            a.mov(ecx, 100_000);
            a.mov(al, 0xAB);
            a.rep.stosb();
            a.hlt();
        });

        // A budget of a few blocks stops the run between chunks with RIP still at the REP STOSB.
        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: 4));
        Assert.NotEqual(ExitReason.Hlt, exit.Reason);
        var rcx = h.Cpu.Gpr[Cpu.RCX];
        Assert.True(rcx > 0 && rcx < 100_000, $"rcx {rcx}");
        Assert.Equal(0x100000 + (100_000 - rcx), h.Cpu.Gpr[Cpu.RDI]);

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(0xAB, h.Machine.Memory.Read8(0x100000 + 99_999));
        Assert.Equal(0, h.Machine.Memory.Read8(0x100000 + 100_000));
    }

    [Fact]
    public void DivideErrorIsDeliveredWithRipAtTheDiv()
    {
        using var h = CpuHarness.Create(64);
        h.InstallFaultStubs();
        h.Load(a =>
        {
            a.xor(ecx, ecx);
            a.mov(eax, 7);
            a.div(ecx);
            a.hlt();
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(Vector.DE, h.FaultVector);
        // The exception frame's RIP is the faulting DIV (a fault, SDM 6.5).
        var pushedRip = h.Machine.Memory.Read64(h.Cpu.Gpr[Cpu.RSP]);
        Assert.Equal(CpuHarness.CodeBase + 2 + 5, pushedRip);
    }

    [Fact]
    public void RepMovsbIntoUnclaimedMmioExitsPerElementWithConsistentRegisters()
    {
        const ulong mmio = 0xF000_0000; // above RAM, no device: EPT_VIOLATION (48) per access
        using var h = CpuHarness.Create(64);
        h.LoadBytes(0x2000, [0x10, 0x20, 0x30]);
        h.Load(a =>
        {
            a.mov(esi, 0x2000);
            a.mov(edi, (uint)mmio);
            a.mov(ecx, 3);
            a.rep.movsb();
            a.hlt();
        });

        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: 100));
        var written = new List<ulong>();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(ExitReason.EptViolation, exit.Reason);
            Assert.True(exit.IsWrite);
            Assert.Equal(mmio + (ulong)i, exit.GuestPhysical);
            Assert.Equal(0x2000UL + (ulong)i, h.Cpu.Gpr[Cpu.RSI]);
            Assert.Equal(3UL - (ulong)i, h.Cpu.Gpr[Cpu.RCX]);
            written.Add(exit.Value);
            var next = h.Cpu.Complete();
            if (i < 2)
            {
                Assert.NotNull(next);
                exit = next.Value;
            }
            else
            {
                Assert.Null(next);
            }
        }

        Assert.Equal([0x10UL, 0x20, 0x30], written);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(mmio + 3, h.Cpu.Gpr[Cpu.RDI]);
        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
    }

    private sealed class Port : IIoDevice
    {
        private byte _next = 1;

        public List<byte> Written { get; } = [];

        public uint In(ushort port, int size) => _next++;

        public void Out(ushort port, int size, uint value) => Written.Add((byte)value);
    }
}
