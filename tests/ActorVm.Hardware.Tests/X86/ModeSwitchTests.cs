using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>Real → protected → long mode the way a boot path does it, and the architectural checks on the way.</summary>
public class ModeSwitchTests
{
    private static void IdentityMap1G(CpuHarness h)
    {
        h.Machine.Memory.Write64(CpuHarness.PageTables, (CpuHarness.PageTables + 0x1000) | 3);
        h.Machine.Memory.Write64(CpuHarness.PageTables + 0x1000, 0x83);
    }

    [Fact]
    public void RealToProtectedToLongModeWithFarJumps()
    {
        using var h = CpuHarness.Create(16);
        IdentityMap1G(h);
        // GDT pseudo-descriptor for LGDT.
        h.Machine.Memory.Write16(0x7F00, 0x2F);
        h.Machine.Memory.Write32(0x7F02, (uint)CpuHarness.GdtBase);
        h.Cpu.Gdtr = default;

        h.Put(16, 0x8000, a =>
        {
            a.cli();
            a.lgdt(__[0x7F00]);
            a.mov(eax, 0x11);
            a.mov(cr0, eax);
            a.jmp(CpuHarness.Code32, 0x9000);
        });
        h.Put(32, 0x9000, a =>
        {
            a.mov(ax, CpuHarness.Data);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.mov(ss, ax);
            a.mov(esp, 0x7000);
            a.mov(eax, (uint)CpuHarness.PageTables);
            a.mov(cr3, eax);
            a.mov(eax, 0x20);
            a.mov(cr4, eax);
            a.mov(ecx, 0xC0000080);
            a.mov(eax, 0x100);
            a.mov(edx, 0);
            a.wrmsr();
            a.mov(eax, 0x80000011u);
            a.mov(cr0, eax);
            // Compatibility mode now: IA-32e active, still 32-bit code.
            a.mov(ebx, cr0);
            a.jmp(CpuHarness.Code64, 0xA000);
        });
        h.Put(64, 0xA000, a =>
        {
            a.mov(rax, 0x123456789ABCDEF0);
            a.mov(rdx, cr4);
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;

        var exit = h.RunSystem();

        var cpu = h.Cpu;
        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.Equal(0x123456789ABCDEF0UL, cpu.Gpr[Cpu.RAX]);
        Assert.Equal(0x80000011UL, cpu.Gpr[Cpu.RBX]);
        Assert.Equal(0x20UL, cpu.Gpr[Cpu.RDX]);
        Assert.Equal(EferBits.LME | EferBits.LMA, cpu.Efer);
        Assert.True(cpu.PagingEnabled);
        Assert.True(cpu.Seg[(int)SegReg.CS].Long);
        Assert.Equal(CpuHarness.Code64, cpu.Seg[(int)SegReg.CS].Selector);
        Assert.Equal(CpuHarness.Data, cpu.Seg[(int)SegReg.SS].Selector);
        Assert.Equal(64, cpu.Bitness);
        Assert.Equal(0x2FUL, cpu.Gdtr.Limit);
        Assert.Equal(0xA000UL + 10 + 3, cpu.Rip);
    }

    [Fact]
    public void LeavingLongModeThroughCompatibilityModeClearsLma()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, 0x8000, a => a.jmp(__fword_ptr[0x7F00]));
        h.Machine.Memory.Write32(0x7F00, 0x9000);
        h.Machine.Memory.Write16(0x7F04, CpuHarness.Code32);
        h.Put(32, 0x9000, a =>
        {
            a.mov(eax, 0x11);
            a.mov(cr0, eax);
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(EferBits.LME, h.Cpu.Efer);
        Assert.False(h.Cpu.LongModeActive);
        Assert.Equal(32, h.Cpu.Bitness);
    }

    [Fact]
    public void PagingWithoutProtectionIsGp()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Put(32, 0x8000, a =>
        {
            a.mov(eax, 0x80000010u);
            a.mov(cr0, eax);
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(0u, h.Stack32(0));
        Assert.Equal(0x8005u, h.Stack32(1));
        Assert.False(h.Cpu.PagingEnabled);
    }

    [Fact]
    public void ActivatingLongModeWithoutPaeIsGp()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Cpu.Efer = EferBits.LME;
        h.Put(32, 0x8000, a =>
        {
            a.mov(eax, 0x80000011u);
            a.mov(cr0, eax);
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.False(h.Cpu.LongModeActive);
    }

    [Fact]
    public void ClearingPaeInLongModeAndReservedCr4BitsAreGp()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        h.Put(64, 0x8000, a =>
        {
            a.mov(rax, 0);
            a.mov(cr4, rax);
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;
        h.RunSystem();
        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(0x8000UL + (ulong)SystemHarness.Length(64, a => a.mov(rax, 0)), h.Stack(1));
        Assert.Equal(Cr4Bits.PAE, h.Cpu.Cr4);

        using var h2 = CpuHarness.Create(64);
        h2.HaltingHandlers();
        h2.Put(64, 0x8000, a =>
        {
            a.mov(rax, 0x2020); // VMXE is not offered
            a.mov(cr4, rax);
            a.hlt();
        });
        h2.Cpu.Rip = 0x8000;
        h2.RunSystem();
        Assert.Equal(Vector.GP, h2.HaltedInHandler());
    }

    [Fact]
    public void FarCallAndFarReturnInProtectedMode()
    {
        using var h = CpuHarness.Create(32);
        h.Put(32, 0x8000, a =>
        {
            a.call(CpuHarness.Code32, 0x9000);
            a.mov(ecx, 3);
            a.hlt();
        });
        h.Put(32, 0x9000, a =>
        {
            a.mov(ebx, 2);
            a.retf();
        });
        h.Cpu.Rip = 0x8000;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(2UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(3UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(CpuHarness.StackTop, h.Cpu.Gpr[Cpu.RSP]);
        Assert.Equal(0x8000u + 7, h.Machine.Memory.Read32(CpuHarness.StackTop - 8));
        Assert.Equal(CpuHarness.Code32, h.Machine.Memory.Read32(CpuHarness.StackTop - 4));
    }

    [Fact]
    public void FarJumpToADataSegmentIsGpWithTheSelector()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Put(32, 0x8000, a => a.jmp(CpuHarness.Data, 0x9000));
        h.Cpu.Rip = 0x8000;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal((uint)CpuHarness.Data, h.Stack32(0));
        Assert.Equal(0x8000u, h.Stack32(1));
    }
}
