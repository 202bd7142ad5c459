using ActorVm.Hardware.Guests;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.Guests;

public sealed class RunnerTests
{
    [Fact]
    public void HaltWithInterruptsOff_IsHaltedForever()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.Print("bye\n");
        k.Code32.A.cli();
        k.Code32.A.hlt();
        var (serial, result) = GuestProgramTests.Boot(k.Build());
        Assert.Equal("bye\n", serial);
        Assert.Equal(RunOutcome.HaltedForever, result.Outcome);
        Assert.Null(result.DebugExitStatus);
        Assert.Contains("IF=0", result.Detail);
    }

    [Fact]
    public void TripleFault_IsReported()
    {
        // No IDT worth the name (limit 0): #UD cannot be delivered → #DF → triple fault.
        var k = new MultibootKernelBuilder();
        var a = k.Code32.A;
        a.push(0);
        a.push(0);
        a.lidt(__[esp]);
        a.ud2();
        var (_, result) = GuestProgramTests.Boot(k.Build());
        Assert.Equal(RunOutcome.TripleFault, result.Outcome);
    }

    [Fact]
    public void InstructionLimit_StopsAnEndlessLoop()
    {
        var k = new MultibootKernelBuilder();
        var l = k.Code32.A.CreateLabel();
        k.Code32.A.Label(ref l);
        k.Code32.A.jmp(l);
        var (_, result) = GuestProgramTests.Boot(k.Build(), new RunLimits(MaxInstructions: 10_000));
        Assert.Equal(RunOutcome.InstructionLimit, result.Outcome);
        Assert.Equal(10_000, result.InstructionsRetired);
    }

    [Fact]
    public void WallTimeLimit_StopsAnEndlessLoop()
    {
        var k = new MultibootKernelBuilder();
        var l = k.Code32.A.CreateLabel();
        k.Code32.A.Label(ref l);
        k.Code32.A.jmp(l);
        var (_, result) = GuestProgramTests.Boot(k.Build(), new RunLimits(WallTime: TimeSpan.FromMilliseconds(200)));
        Assert.Equal(RunOutcome.TimeLimit, result.Outcome);
    }

    [Fact]
    public void UnclaimedMmio_ReadsAllOnes_AndDropsWrites()
    {
        // 64 MiB of RAM; 0xE0000000 is neither RAM nor a device.
        var k = new MultibootKernelBuilder();
        var a = k.Code32.A;
        a.mov(esi, 0xE0000000);
        a.mov(__dword_ptr[esi], 0x12345678);
        a.mov(edi, __dword_ptr[esi]);
        k.Code32.PrintHex(edi);
        a.movzx(edi, __byte_ptr[esi + 1]);
        k.Code32.PrintHex(edi);
        k.Code32.DebugExit(0);
        (long Reads, long Writes) counts = default;
        var (serial, result) = GuestProgramTests.Boot(k.Build(), inspect: m => counts = (m.UnclaimedMmio.Reads, m.UnclaimedMmio.Writes));
        Assert.Equal("ffffffff000000ff", serial);
        Assert.Equal(1, result.DebugExitStatus);
        Assert.Equal((2L, 1L), counts);
    }

    [Fact]
    public void UnknownMsr_RaisesGp_InTheGuest()
    {
        var k = new MultibootKernelBuilder();
        var c = k.EnterLongMode();
        k.InstallExceptionHandlers();
        k.ExpectFault64("rdmsr", x =>
        {
            x.mov(ecx, 0x12345);
            x.rdmsr();
        }, vector: 13, errorCode: 0);
        c.A.mov(eax, r13d);
        c.DebugExitEax();
        var (serial, result) = GuestProgramTests.Boot(k.Build());
        Assert.Contains("rdmsr ok", serial);
        Assert.Equal(1, result.DebugExitStatus);
    }
}
