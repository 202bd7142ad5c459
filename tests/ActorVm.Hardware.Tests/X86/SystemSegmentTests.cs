using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>Segment-register instructions, far returns with a release count, INT1/INTO, debug registers, LLDT.</summary>
public class SystemSegmentTests
{
    private const ulong Code = CpuHarness.CodeBase;

    [Fact]
    public void PushPopSregAndFarPointerLoads()
    {
        using var h = CpuHarness.Create(32);
        h.Machine.Memory.Write32(0x7E00, 0xCAFE);
        h.Machine.Memory.Write16(0x7E04, CpuHarness.Data16);
        h.Put(32, Code, a =>
        {
            a.push(ds);
            a.pop(es);
            a.lfs(ebx, __[0x7E00]);
            a.mov(ecx, gs);
            a.mov(__word_ptr[0x7E10], fs);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        var cpu = h.Cpu;
        Assert.Equal(CpuHarness.Data, cpu.Seg[(int)SegReg.ES].Selector);
        Assert.Equal(CpuHarness.Data16, cpu.Seg[(int)SegReg.FS].Selector);
        Assert.Equal(0xCAFEUL, cpu.Gpr[Cpu.RBX]);
        Assert.Equal((ulong)CpuHarness.Data, cpu.Gpr[Cpu.RCX]);
        Assert.Equal(CpuHarness.Data16, h.Machine.Memory.Read16(0x7E10));
        Assert.Equal(CpuHarness.StackTop, cpu.Gpr[Cpu.RSP]);
    }

    [Fact]
    public void PopSsWithABadSelectorFaultsWithoutMovingTheStack()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Put(32, Code, a =>
        {
            a.push(cs);
            a.pop(ss);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal((uint)CpuHarness.Code32, h.Stack32(0));
        Assert.Equal((uint)(Code + 1), h.Stack32(1));
        // Frame (err, eip, cs, eflags) sits right below the pushed CS, which was not popped.
        Assert.Equal(CpuHarness.StackTop - 4 - 16, h.Cpu.Gpr[Cpu.RSP]);
    }

    [Fact]
    public void FarReturnReleasesParameterBytes()
    {
        using var h = CpuHarness.Create(64);
        h.Machine.Memory.Write64(0x7E00, 0x9000);
        h.Machine.Memory.Write16(0x7E08, CpuHarness.Code64);
        h.Put(64, Code, a =>
        {
            a.call(__tword_ptr[0x7E00]);
            a.hlt();
        });
        h.Put(64, 0x9000, a =>
        {
            a.mov(ebx, 1);
            a.db(0x48, 0xCA, 0x10, 0x00); // RETFQ 16
        });
        h.Cpu.Rip = Code;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(CpuHarness.StackTop + 16, h.Cpu.Gpr[Cpu.RSP]);
    }

    [Fact]
    public void Int1AndIntoAreTrapsToTheNextInstruction()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Put(32, Code, a =>
        {
            a.mov(al, 0x7F);
            a.add(al, 1); // OF=1
            a.into();
            a.hlt();
        });
        h.Cpu.Rip = Code;
        h.RunSystem();
        Assert.Equal(Vector.OF, h.HaltedInHandler());
        Assert.Equal((uint)Code + 5, h.Stack32(0));

        using var h2 = CpuHarness.Create(64);
        h2.HaltingHandlers();
        h2.Put(64, Code, a => a.int1());
        h2.Cpu.Rip = Code;
        h2.RunSystem();
        Assert.Equal(Vector.DB, h2.HaltedInHandler());
        Assert.Equal(Code + 1, h2.Stack(0));
    }

    [Fact]
    public void DebugRegistersKeepTheirFixedBitsAndDr4AliasesDr6()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        h.Put(64, Code, a =>
        {
            a.mov(rax, 0x1234);
            a.mov(dr0, rax);
            a.mov(rbx, dr0);
            a.mov(rax, 0);
            a.mov(dr7, rax);
            a.mov(rcx, dr7);
            a.mov(rdx, dr4);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(0x1234UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(0x400UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(0xFFFF0FF0UL, h.Cpu.Gpr[Cpu.RDX]);
    }

    [Fact]
    public void LldtLoadsTheLdtAndSegmentsComeFromIt()
    {
        using var h = CpuHarness.Create(32);
        const ulong ldt = 0x2000;
        h.Descriptor(6, 0x0F | (ldt << 16) | (0x82UL << 40)); // LDT, 2 entries
        h.Machine.Memory.Write64(ldt + 8, 0x00CF93000000FFFF | (0x40UL << 16)); // data, base 0x40
        h.Put(32, Code, a =>
        {
            a.mov(ax, 0x30);
            a.lldt(ax);
            a.mov(ax, 0x0C); // LDT entry 1, TI=1
            a.mov(ds, ax);
            a.sldt(bx);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(ldt, h.Cpu.Ldtr.Base);
        Assert.Equal(0x40UL, h.Cpu.Seg[(int)SegReg.DS].Base);
        Assert.Equal(0x30UL, h.Cpu.Gpr[Cpu.RBX] & 0xFFFF);
    }

    [Fact]
    public void ApTrampolineSetsPeBeforeLgdt()
    {
        using var h = CpuHarness.Create(16);
        h.Cpu.Gdtr = default;
        // SIPI vector 0x08: CS = 0x0800, IP = 0; data addressed through DS = CS.
        h.Cpu.Seg[(int)SegReg.CS] = Segment.Real(0x0800, 0x9B);
        h.Cpu.Seg[(int)SegReg.DS] = Segment.Real(0x0800);
        h.Cpu.UpdateMode();
        h.Machine.Memory.Write16(0x8100, 0x2F);
        h.Machine.Memory.Write32(0x8102, (uint)CpuHarness.GdtBase);
        h.Put(16, 0x8000, a =>
        {
            a.mov(eax, 0x11);
            a.mov(cr0, eax);
            a.lgdt(__[0x100]);
            a.jmp(CpuHarness.Code32, 0x9000);
        });
        h.Put(32, 0x9000, a =>
        {
            a.mov(ebx, 0x32);
            a.hlt();
        });
        h.Cpu.Rip = 0;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(0x32UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(32, h.Cpu.Bitness);
    }
}

public class SystemSegmentQueryTests
{
    private static (bool Zf, ulong Rbx) Run(ushort selector, Action<Iced.Intel.Assembler> op)
    {
        using var h = CpuHarness.Create(32);
        h.Put(32, CpuHarness.CodeBase, a =>
        {
            a.mov(eax, selector);
            op(a);
            a.hlt();
        });
        h.Cpu.Gpr[Cpu.RBX] = 0x1234;
        h.Cpu.Rip = CpuHarness.CodeBase;
        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);
        return (h.Cpu.ZF, h.Cpu.Gpr[Cpu.RBX]);
    }

    [Fact]
    public void LarLslVerrVerwReportThroughZf()
    {
        Assert.Equal((true, 0x00C09B00UL), Run(CpuHarness.Code32, a => a.lar(ebx, eax)));
        Assert.Equal((true, 0xFFFFFFFFUL), Run(CpuHarness.Code32, a => a.lsl(ebx, eax)));
        Assert.Equal((true, 0xFFFFUL), Run(CpuHarness.Data16, a => a.lsl(ebx, eax)));
        Assert.True(Run(CpuHarness.Code32, a => a.verr(ax)).Zf);   // readable code
        Assert.False(Run(CpuHarness.Code32, a => a.verw(ax)).Zf);  // code is never writable
        Assert.True(Run(CpuHarness.Data, a => a.verw(ax)).Zf);
        Assert.Equal((false, 0x1234UL), Run(0x7F8, a => a.lsl(ebx, eax))); // beyond the GDT: no fault, no write
        Assert.False(Run(0, a => a.verr(ax)).Zf);
    }
}
