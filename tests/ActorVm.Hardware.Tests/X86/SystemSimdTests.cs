using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>The x87/SSE state instructions kernels use, and the CR0.EM/TS, CR4.OSFXSR rules.</summary>
public class SystemSimdTests
{
    private const ulong Code = CpuHarness.CodeBase;
    private const ulong Area = 0x30000;

    private static CpuHarness Sse(Action<Iced.Intel.Assembler> code, ulong cr4 = Cr4Bits.OSFXSR)
    {
        var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        h.Cpu.Cr4 |= cr4;
        h.Put(64, Code, code);
        h.Cpu.Rip = Code;
        return h;
    }

    [Fact]
    public void FxsaveAndFxrstorRoundTripTheImage()
    {
        using var h = Sse(a =>
        {
            a.fninit();
            a.fldcw(__word_ptr[0x7E00]);
            a.ldmxcsr(__dword_ptr[0x7E04]);
            a.fxsave(__[Area]);
            a.pxor(xmm3, xmm3);
            a.fninit();
            a.fxrstor(__[Area]);
            a.fnstcw(__word_ptr[0x7E10]);
            a.stmxcsr(__dword_ptr[0x7E14]);
            a.hlt();
        });
        h.Machine.Memory.Write16(0x7E00, 0x027F);
        h.Machine.Memory.Write32(0x7E04, 0x9FC0);
        h.Cpu.Xmm[3] = new UInt128(0x0102030405060708, 0x1112131415161718);

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        var m = h.Machine.Memory;
        Assert.Equal((ushort)0x027F, m.Read16(Area));
        Assert.Equal(0x9FC0u, m.Read32(Area + 24));
        Assert.Equal(0xFFFFu, m.Read32(Area + 28));
        Assert.Equal(0x1112131415161718UL, m.Read64(Area + 160 + 48));
        Assert.Equal(0x0102030405060708UL, m.Read64(Area + 168 + 48));
        Assert.Equal(new UInt128(0x0102030405060708, 0x1112131415161718), h.Cpu.Xmm[3]);
        Assert.Equal((ushort)0x027F, m.Read16(0x7E10));
        Assert.Equal(0x9FC0u, m.Read32(0x7E14));
    }

    [Fact]
    public void MisalignedFxsaveIsGp()
    {
        using var h = Sse(a => a.fxsave(__[Area + 8]));
        h.RunSystem();
        Assert.Equal(Vector.GP, h.HaltedInHandler());
    }

    [Fact]
    public void LdmxcsrWithReservedBitsIsGp()
    {
        using var h = Sse(a => a.ldmxcsr(__dword_ptr[0x7E04]));
        h.Machine.Memory.Write32(0x7E04, 0x10000);
        h.RunSystem();
        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(0x1F80u, h.Cpu.Mxcsr);
    }

    [Fact]
    public void AlignedMovesCheckAlignmentUnalignedOnesDoNot()
    {
        using var h = Sse(a =>
        {
            a.movups(xmm1, __[Area + 4]);
            a.movdqu(__[Area + 0x104], xmm1);
            a.movdqa(xmm2, __[Area + 0x100]);
            a.movaps(__[Area + 0x200], xmm2);
            a.movapd(xmm4, __[Area + 8]);
            a.hlt();
        });
        for (var i = 0; i < 32; i++)
        {
            h.Machine.Memory.Write8(Area + (ulong)i, (byte)i);
        }

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(h.Machine.Memory.ReadBytes(Area + 4, 16), h.Machine.Memory.ReadBytes(Area + 0x104, 16));
        Assert.Equal(h.Machine.Memory.ReadBytes(Area + 0x100, 16), h.Machine.Memory.ReadBytes(Area + 0x200, 16));
        Assert.Equal(new UInt128(0x131211100F0E0D0C, 0x0B0A090807060504), h.Cpu.Xmm[1]);
        Assert.Equal(Code + (ulong)SystemHarness.Length(64, a =>
        {
            a.movups(xmm1, __[Area + 4]);
            a.movdqu(__[Area + 0x104], xmm1);
            a.movdqa(xmm2, __[Area + 0x100]);
            a.movaps(__[Area + 0x200], xmm2);
        }), h.Stack(1));
    }

    [Fact]
    public void MovdMovqAndXorZeroing()
    {
        using var h = Sse(a =>
        {
            a.mov(rax, unchecked((long)0xFEDCBA9876543210));
            a.movq(xmm5, rax);
            a.movd(ebx, xmm5);
            a.movq(xmm6, xmm5);
            a.movq(__qword_ptr[0x7E20], xmm6);
            a.xorps(xmm5, xmm5);
            a.movq(rcx, xmm5);
            a.hlt();
        });
        h.Cpu.Xmm[6] = UInt128.MaxValue;

        h.RunSystem();

        Assert.Equal(0x76543210UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal((UInt128)0xFEDCBA9876543210, h.Cpu.Xmm[6]);
        Assert.Equal(0xFEDCBA9876543210UL, h.Machine.Memory.Read64(0x7E20));
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(UInt128.Zero, h.Cpu.Xmm[5]);
    }

    [Fact]
    public void SseWithoutOsfxsrIsUd()
    {
        using var h = Sse(a => a.movaps(xmm0, xmm1), cr4: 0);
        h.RunSystem();
        Assert.Equal(Vector.UD, h.HaltedInHandler());
    }

    [Fact]
    public void TaskSwitchedMakesSseAndX87Nm()
    {
        using var h = Sse(a => a.movdqu(xmm0, xmm1));
        h.Cpu.Cr0 |= Cr0Bits.TS;
        h.RunSystem();
        Assert.Equal(Vector.NM, h.HaltedInHandler());

        using var h2 = Sse(a => a.fninit());
        h2.Cpu.Cr0 |= Cr0Bits.TS;
        h2.RunSystem();
        Assert.Equal(Vector.NM, h2.HaltedInHandler());
    }

    [Fact]
    public void EmulationFlagMakesSseUdAndX87Nm()
    {
        using var h = Sse(a => a.pxor(xmm0, xmm0));
        h.Cpu.Cr0 |= Cr0Bits.EM;
        h.RunSystem();
        Assert.Equal(Vector.UD, h.HaltedInHandler());

        using var h2 = Sse(a => a.fnstsw(ax));
        h2.Cpu.Cr0 |= Cr0Bits.EM;
        h2.RunSystem();
        Assert.Equal(Vector.NM, h2.HaltedInHandler());
    }

    [Fact]
    public void FwaitFaultsOnlyWithMpAndTs()
    {
        using var h = Sse(a =>
        {
            a.wait();
            a.mov(ebx, 1);
            a.hlt();
        });
        h.Cpu.Cr0 |= Cr0Bits.TS;
        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RBX]);

        using var h2 = Sse(a => a.wait());
        h2.Cpu.Cr0 |= Cr0Bits.TS | Cr0Bits.MP;
        h2.RunSystem();
        Assert.Equal(Vector.NM, h2.HaltedInHandler());
    }

    [Fact]
    public void FninitAndStatusWord()
    {
        using var h = Sse(a =>
        {
            a.fninit();
            a.fnstsw(ax);
            a.fnstcw(__word_ptr[0x7E00]);
            a.emms();
            a.hlt();
        });
        h.Cpu.Fpu.Status = 0x1234;
        h.Cpu.Gpr[Cpu.RAX] = 0xFFFF;

        h.RunSystem();

        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal((ushort)0x037F, h.Machine.Memory.Read16(0x7E00));
    }

    [Fact]
    public void MovbeSwapsBytes()
    {
        using var h = Sse(a =>
        {
            a.movbe(eax, __dword_ptr[0x7E00]);
            a.movbe(__qword_ptr[0x7E10], rax);
            a.hlt();
        });
        h.Machine.Memory.Write32(0x7E00, 0x11223344);

        h.RunSystem();

        Assert.Equal(0x44332211UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(0x1122334400000000UL, h.Machine.Memory.Read64(0x7E10));
    }

    [Fact]
    public void UnimplementedSseIsUdAndCounted()
    {
        using var h = Sse(a => a.addps(xmm0, xmm1));
        var before = h.Cpu.UnsupportedInstructions;
        h.RunSystem();
        Assert.Equal(Vector.UD, h.HaltedInHandler());
        Assert.Equal(before + 1, h.Cpu.UnsupportedInstructions);
    }
}
