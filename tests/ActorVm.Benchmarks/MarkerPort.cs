using System.Diagnostics;
using ActorVm.Hardware.Devices;

namespace ActorVm.Benchmarks;

/// <summary>
/// The probes' timing port: the guest writes 1 when the measured phase starts and 2 when it ends;
/// each write records the host's timestamp, and the first also the managed heap size (all vCPUs
/// started and idle at that point in the scale probe).
/// </summary>
internal sealed class MarkerPort : IIoDevice
{
    public readonly long[] Ticks = new long[3];
    public long HeapAtFirst;

    public uint In(ushort port, int size) => 0;

    public void Out(ushort port, int size, uint value)
    {
        if (value is 1 or 2)
        {
            Ticks[value] = Stopwatch.GetTimestamp();
            if (value == 1)
            {
                HeapAtFirst = GC.GetTotalMemory(false);
            }
        }
    }
}
