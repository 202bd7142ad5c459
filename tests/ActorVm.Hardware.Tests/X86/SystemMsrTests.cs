using ActorVm.Hardware.Exits;
using ActorVm.Hardware.Memory;
using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

public class SystemMsrTests
{
    private static (GuestMemory Memory, ManualTscClock Clock, Cpu Cpu) Bare(CpuModel? model = null)
    {
        var memory = new GuestMemory(1 << 20);
        var clock = new ManualTscClock();
        return (memory, clock, new Cpu(0, memory, clock, model));
    }

    [Fact]
    public void TscWritesMoveTscAdjustAndTheOtherWayRound()
    {
        var (memory, clock, cpu) = Bare();
        using var _ = memory;
        clock.Set(1000);

        Assert.True(cpu.TryWriteMsr(Msr.Tsc, 5000));
        Assert.Equal(5000UL, cpu.ReadTsc());
        Assert.True(cpu.TryReadMsr(Msr.TscAdjust, out var adjust));
        Assert.Equal(4000UL, adjust);

        Assert.True(cpu.TryWriteMsr(Msr.TscAdjust, 4100));
        Assert.Equal(5100UL, cpu.ReadTsc());
        clock.Advance(10);
        Assert.Equal(5110UL, cpu.ReadTsc());
        Assert.NotEqual(0u, Cpuid.Query(cpu, 7, 0).Ebx & 2);
    }

    [Fact]
    public void ReservedAndNonCanonicalValuesAreRefused()
    {
        var (memory, _, cpu) = Bare(CpuModel.Default with { Nx = false });
        using var _m = memory;
        Assert.False(cpu.TryWriteMsr(Msr.Lstar, 0x0000_8000_0000_0000));
        Assert.True(cpu.TryWriteMsr(Msr.Lstar, 0xFFFF_8000_0000_0000));
        Assert.False(cpu.TryWriteMsr(Msr.Efer, EferBits.NXE));
        Assert.False(cpu.TryWriteMsr(Msr.TscAux, 1UL << 32));
        Assert.False(cpu.TryReadMsr(0xDEAD, out _));
    }

    [Fact]
    public void EferLmeCannotChangeWhilePagingIsOn()
    {
        using var h = CpuHarness.Create(64);
        Assert.False(h.Cpu.TryWriteMsr(Msr.Efer, 0));
        Assert.True(h.Cpu.TryWriteMsr(Msr.Efer, EferBits.LME | EferBits.NXE | EferBits.SCE));
        Assert.Equal(EferBits.LME | EferBits.LMA | EferBits.NXE | EferBits.SCE, h.Cpu.Efer);
    }

    [Fact]
    public void MsrExitRoutesApicMsrsAndCompletesCoreOnes()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, CpuHarness.CodeBase, a =>
        {
            a.mov(ecx, 0x808); // x2APIC TPR
            a.rdmsr();
            a.mov(ebx, eax);
            a.mov(ecx, 0xC0000080);
            a.rdmsr();
            a.hlt();
        });
        h.Cpu.Rip = CpuHarness.CodeBase;

        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: long.MaxValue));
        Assert.Equal(ExitReason.MsrRead, exit.Reason);
        Assert.Equal(0x808u, MsrExit.Index(exit));
        Assert.Equal(MsrExitResult.ApicMsr, MsrExit.Handle(h.Cpu, exit, out var next));
        Assert.Null(next);
        Assert.True(h.Cpu.HasPendingInstruction);

        // The LAPIC answers 0x20; the run loop completes the RDMSR with it.
        Assert.Null(MsrExit.CompleteRead(h.Cpu, 0x20));
        exit = h.Cpu.Run(new VmEntry(InstructionBudget: long.MaxValue));
        Assert.Equal(ExitReason.MsrRead, exit.Reason);
        Assert.Equal(MsrExitResult.Completed, MsrExit.Handle(h.Cpu, exit, out next));

        Assert.Equal(ExitReason.Hlt, h.RunAfter(next).Reason);
        Assert.Equal(0x20UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal((uint)(EferBits.LME | EferBits.LMA), (uint)h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RDX]);
    }

    [Fact]
    public void RdmsrAtCpl3IsGpWithoutAnExit()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        ExceptionTests.FourKPages(h, user: true);
        ExceptionTests.UserSegmentsAndTss(h);
        h.Put(64, 0x9000, a => a.rdmsr());
        ExceptionTests.IretFrame(h, 0x6F00, 0x9000, 0x33, 0x2, 0x5000, 0x3B);
        h.Put(64, CpuHarness.CodeBase, a =>
        {
            a.mov(ax, 0x40);
            a.ltr(ax);
            a.mov(rsp, 0x6F00);
            a.iretq();
        });
        h.Cpu.Rip = CpuHarness.CodeBase;

        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: long.MaxValue));

        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(0x9000UL, h.Stack(1));
    }
}
