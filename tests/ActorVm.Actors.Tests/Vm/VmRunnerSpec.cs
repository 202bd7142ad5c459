using ActorVm.Actors.Vm;
using ActorVm.Hardware.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Vm;

/// <summary>The host entry point: VmRunner.RunAsync with its own actor system, SMP guests.</summary>
public sealed class VmRunnerSpec
{
    /// <summary>
    /// BSP: INIT and SIPI to all-excluding-self, then halt until every AP's IPI arrived. Each AP
    /// reads its x2APIC ID (MSR 0x802) and sends vector 0x40 + ID to APIC 0 (distinct vectors, so
    /// nothing coalesces in IRR). Handlers count in [0x600]; the BSP leaves through debug-exit.
    /// </summary>
    private static void SmpGuest(Hardware.Machine m, IVmControl control, int vcpus, RecordingPorts ports)
    {
        m.Io.Register(0x80, 8, ports);
        var debugExit = new DebugExit();
        control.ShutdownOn(debugExit);
        m.Io.Register(DebugExit.DefaultPort, DebugExit.PortCount, debugExit);
        for (var i = 1; i < vcpus; i++)
        {
            var vector = (byte)(0x40 + i);
            TestGuest.Handler(m, vector, (ushort)(0x3000 + (i * 0x40)), a =>
            {
                a.add(__byte_ptr[0x600], 1);
                a.@out(0x81, al);
                a.Eoi();
                a.iret();
            });
        }

        TestGuest.LoadReal(m, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.Wrmsr(0x830, 0xC4500); // INIT, all excluding self
            a.Wrmsr(0x830, 0xC4602); // SIPI vector 2, all excluding self
            a.sti();
            var wait = a.CreateLabel();
            a.Label(ref wait);
            a.hlt();
            a.cmp(__byte_ptr[0x600], (byte)(vcpus - 1));
            a.jb(wait);
            a.@out(0x80, al);
            a.mov(al, __byte_ptr[0x600]);
            a.mov(dx, DebugExit.DefaultPort);
            a.@out(dx, al);
            a.cli();
            a.hlt();
        });
        m.Memory.WriteBytes(0x2000, TestGuest.Assemble16(0, a =>
        {
            a.EnableX2Apic(bsp: false);
            a.mov(ecx, 0x802u);
            a.rdmsr();
            a.add(eax, 0x4040u); // fixed, assert, vector 0x40 + ID
            a.xor(edx, edx);      // → APIC 0
            a.mov(ecx, 0x830u);
            a.wrmsr();
            a.cli();
            a.hlt();
        }));
    }

    [Theory(DisplayName = "RunAsync: an SMP guest boots its APs with INIT/SIPI and every AP's IPI reaches the BSP")]
    [InlineData(ImmediateExitMethod.PreemptionTimer, VcpuDispatcher.Shared, 4)]
    [InlineData(ImmediateExitMethod.SelfIpi, VcpuDispatcher.Pinned, 4)]
    [InlineData(ImmediateExitMethod.PreemptionTimer, VcpuDispatcher.Shared, 16)]
    [InlineData(ImmediateExitMethod.PreemptionTimer, VcpuDispatcher.Shared, 64)]
    [InlineData(ImmediateExitMethod.PreemptionTimer, VcpuDispatcher.Shared, 8, 300)]
    [InlineData(ImmediateExitMethod.SelfIpi, VcpuDispatcher.Shared, 8, 300)]
    public async Task SmpIpis(ImmediateExitMethod method, VcpuDispatcher dispatcher, int vcpus, int delayMicroseconds = 0)
    {
        var ports = new RecordingPorts();
        var result = await VmRunner.RunAsync(new VmOptions
        {
            Vcpus = vcpus,
            MemoryMiB = 4,
            ImmediateExit = method,
            Dispatcher = dispatcher,
            Faults = delayMicroseconds == 0 ? null : new ActorVm.Actors.Vcpu.FaultInjection(delayMicroseconds, Seed: 42),
            Timeout = TimeSpan.FromSeconds(20),
            Load = (m, c) => SmpGuest(m, c, vcpus, ports),
        });

        Assert.Equal(VmExitKind.Shutdown, result.Kind);
        Assert.Equal(DebugExit.StatusFor((uint)(vcpus - 1)), result.ExitCode); // OUT of AL = [0x600] count
        Assert.Equal(vcpus - 1, ports.Count(0x81));
        Assert.Equal(1, ports.Count(0x80));
        Assert.Equal(vcpus, result.Statistics.PerVcpu.Count);
        Assert.Equal(vcpus - 1, result.Statistics.PerVcpu[0].Injections.Irqs);
        Assert.All(result.Statistics.PerVcpu, v => Assert.True(v.InstructionsRetired > 0));
        Assert.Equal(new Stats.WarnStatistics(0, 0, 0), result.Statistics.Total.Warnings);
        var text = Stats.StatisticsText.Format(result.Statistics, perVcpu: true);
        Assert.Contains("[vcpu 1] instructions", text, StringComparison.Ordinal);
        Assert.Contains("HLT", text, StringComparison.Ordinal);
        var json = System.Text.Json.JsonSerializer.Serialize(result.Statistics);
        Assert.Contains("\"ExitsByReason\"", json, StringComparison.Ordinal);
    }

    [Fact(DisplayName = "RunAsync: a guest that never stops ends with Timeout, not a hang")]
    public async Task TimeoutEndsTheVm()
    {
        var result = await VmRunner.RunAsync(new VmOptions
        {
            MemoryMiB = 4,
            Timeout = TimeSpan.FromMilliseconds(300),
            Load = (m, _) => TestGuest.LoadReal(m, 0, a =>
            {
                var l = a.CreateLabel();
                a.Label(ref l);
                a.jmp(l);
            }),
        });

        Assert.Equal(VmExitKind.Timeout, result.Kind);
        Assert.True(result.Statistics.Total.InstructionsRetired > 0);
    }
}

/// <summary>A failing actor ends the VM with an error and the statistics, never a hang.</summary>
public sealed class FailureSpec
{
    private sealed class ThrowingPort : IIoDevice
    {
        public uint In(ushort port, int size) => throw new InvalidOperationException("device exploded");

        public void Out(ushort port, int size, uint value) => throw new InvalidOperationException("device exploded");
    }

    [Fact(DisplayName = "A device that throws on the run loop's thread fails the RunLoopActor; the VM ends with Error")]
    public async Task ChildFailureEndsTheVm()
    {
        var result = await VmRunner.RunAsync(new VmOptions
        {
            MemoryMiB = 4,
            Timeout = TimeSpan.FromSeconds(20),
            Load = (m, _) =>
            {
                m.Io.Register(0x90, 1, new ThrowingPort());
                TestGuest.LoadReal(m, 0, a => { a.@out(0x90, al); a.hlt(); });
            },
        });

        Assert.Equal(VmExitKind.Error, result.Kind);
        Assert.Contains("device exploded", result.Detail, StringComparison.Ordinal);
        Assert.Equal(1, result.Statistics.Total.ExitsByReason["IO_INSTRUCTION"]);
    }
}
