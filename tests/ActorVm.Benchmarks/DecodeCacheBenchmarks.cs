using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.X86;
using BenchmarkDotNet.Attributes;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// Decode-cache miss cost: one pass over <see cref="StraightLine"/> distinct instructions
/// (63 full blocks of straight-line ALU code), either with every block already decoded
/// (<see cref="Warm"/>) or with the decode cache flushed first (<see cref="Cold"/>: every
/// block is translated, decoded with Iced and given its handlers). One operation is one guest
/// instruction; the miss cost per instruction is Cold − Warm (× 64 per block).
/// </summary>
public class DecodeCacheBenchmarks
{
    public const int StraightLine = 63 * 64;

    private Machine? _machine;
    private Cpu? _cpu;
    private ulong _entry;

    [GlobalSetup]
    public void Setup()
    {
        var k = new MultibootKernelBuilder();
        var a = k.Code32.A;
        var start = a.CreateLabel();
        a.Label(ref start);
        for (var i = 0; i < StraightLine; i++)
        {
            switch (i % 4)
            {
                case 0: a.add(eax, ebx); break;
                case 1: a.xor(ecx, edx); break;
                case 2: a.sub(edx, 3); break;
                default: a.mov(ebx, ecx); break;
            }
        }

        // Back to the start: the budget, not an exit, ends a pass (blocks also end at page
        // boundaries, so a pass is StraightLine instructions give or take one block).
        a.jmp(start);
        _machine = Machine.CreatePc(new MachineConfig(1, 64), _ => { });
        MultibootLoader.Load(_machine, k.Build(), "decode");
        _cpu = _machine.Cpus[0];
        _entry = _cpu.Rip;
    }

    [GlobalCleanup]
    public void Cleanup() => _machine?.Dispose();

    [Benchmark(OperationsPerInvoke = StraightLine)]
    public long Warm() => Pass(flush: false);

    [Benchmark(OperationsPerInvoke = StraightLine)]
    public long Cold() => Pass(flush: true);

    private long Pass(bool flush)
    {
        var cpu = _cpu!;
        if (flush)
        {
            cpu.FlushDecodeCache();
        }

        cpu.Rip = _entry;
        var exit = cpu.Run(new VmEntry(InstructionBudget: StraightLine));
        return exit.InstructionsRetired;
    }
}
