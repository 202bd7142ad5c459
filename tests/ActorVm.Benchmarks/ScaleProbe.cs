using System.Diagnostics;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Devices;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// vCPU scale: at each vCPU count, vCPU 0 starts every AP with INIT/SIPI (all excluding self);
/// each AP takes its own stack, checks in (LOCK INC of a counter, fixed IPI to vCPU 0) and
/// halts with IF=1. vCPU 0 then writes a marker (start-up done, all halted), broadcasts one
/// fixed IPI to all the others; each AP's handler checks in again and IPIs vCPU 0; after the
/// last one vCPU 0 writes the second marker and leaves. Reported: start-up time (VM start to
/// the first marker), wake time (broadcast to the last reply, 2(N-1) IPIs), IPI throughput
/// over that phase, and managed memory per vCPU at the first marker (all vCPUs idle).
/// </summary>
public static class ScaleProbe
{
    private const byte BspVector = 0x40;
    private const byte WakeVector = 0x41;

    public static int Run(int[] counts)
    {
        // Warm-up (JIT, first actor system), not reported.
        VmRunner.RunAsync(new VmOptions { Vcpus = 2, MemoryMiB = 4, Load = (m, c) => Load(m, c, 2, new MarkerPort()) }).GetAwaiter().GetResult();
        Console.WriteLine($"{"vcpus",6} {"start ms",10} {"wake ms",10} {"IPIs/s",12} {"KiB/vcpu",10}  total s");
        foreach (var n in counts)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            var heapBefore = GC.GetTotalMemory(true);
            var marker = new MarkerPort();
            var start = Stopwatch.GetTimestamp();
            var result = VmRunner.RunAsync(new VmOptions
            {
                Vcpus = n,
                MemoryMiB = 4,
                Timeout = TimeSpan.FromSeconds(120),
                Load = (m, c) => Load(m, c, n, marker),
            }).GetAwaiter().GetResult();
            var total = Stopwatch.GetElapsedTime(start);
            if (result.Kind != VmExitKind.Shutdown || marker.Ticks[2] == 0)
            {
                Console.WriteLine($"{n,6} failed: {result.Kind} {result.Detail} after {total.TotalSeconds:0.0} s");
                return 1;
            }

            var startMs = Stopwatch.GetElapsedTime(start, marker.Ticks[1]).TotalMilliseconds;
            var wake = Stopwatch.GetElapsedTime(marker.Ticks[1], marker.Ticks[2]);
            var ipis = 2.0 * (n - 1);
            var kib = (marker.HeapAtFirst - heapBefore) / 1024.0 / n;
            Console.WriteLine($"{n,6} {startMs,10:0.0} {wake.TotalMilliseconds,10:0.0} {(n > 1 ? ipis / wake.TotalSeconds : 0),12:0} {kib,10:0.0}  {total.TotalSeconds:0.00}");
        }

        return 0;
    }

    private static void Load(Machine m, IVmControl control, int n, MarkerPort marker)
    {
        ActorGuests.AttachDebugExit(m, control);
        m.Io.Register(0x90, 1, marker);
        ActorGuests.Handler(m, BspVector, 0x3000, a =>
        {
            a.Eoi();
            a.iret();
        });
        ActorGuests.Handler(m, WakeVector, 0x3100, a =>
        {
            a.@lock.inc(__dword_ptr[ActorGuests.Counter2]);
            a.Eoi();
            a.Wrmsr(0x830, 0x4000 | BspVector);
            a.iret();
        });
        ActorGuests.LoadReal(m, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.StartAps();
            a.WaitFor(ActorGuests.Counter, n - 1);
            a.mov(al, 1);
            a.@out(0x90, al);
            a.Wrmsr(0x830, 0xC4000 | WakeVector); // fixed, all excluding self
            a.WaitFor(ActorGuests.Counter2, n - 1);
            a.mov(al, 2);
            a.@out(0x90, al);
            a.DebugExit();
        });
        m.Memory.WriteBytes(ActorGuests.ApCode, ActorGuests.Assemble16(0, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.EnableX2Apic(bsp: false);
            // Own 32-byte stack per APIC ID at 0x20000 + 32 * id (SS = 0x2000 + 2 * id, SP = 0x20).
            a.mov(ecx, 0x802u);
            a.rdmsr();
            a.shl(ax, 1);
            a.add(ax, 0x2000);
            a.mov(ss, ax);
            a.mov(sp, 0x20);
            a.@lock.inc(__dword_ptr[ActorGuests.Counter]);
            a.Wrmsr(0x830, 0x4000 | BspVector);
            a.sti();
            var idle = a.CreateLabel();
            a.Label(ref idle);
            a.hlt();
            a.jmp(idle);
        }));
    }
}
