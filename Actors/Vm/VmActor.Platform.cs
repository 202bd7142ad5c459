using ActorVm.Actors.Lapic;
using ActorVm.Hardware.Devices;
using Akka.Actor;
using static ActorVm.Actors.Vm.VmProtocol;

namespace ActorVm.Actors.Vm;

/// <summary>
/// The VM-level half of the PC platform: the IOAPIC's messages enter the APIC bus here (level
/// EOIs reach the IOAPIC straight from the LAPIC actors), the 8259's INTR reaches the
/// BSP's LAPIC (LINT0, ExtINT), and the
/// PIT's counter 0 is driven by a device timer on the VM's clock, as KVM's in-kernel PIT runs
/// its own hrtimer (pit_timer_fn) outside any vCPU. Devices themselves stay plain objects.
/// </summary>
public sealed partial class VmActor
{
    private Pit8254? _pit;
    private long _pitGeneration;
    private ulong _pitDeadline = ulong.MaxValue;

    /// <summary>The PIT will raise IRQ 0 again: the VM is not quiescent.</summary>
    private bool DeviceTimerArmed => Volatile.Read(ref _pitDeadline) != ulong.MaxValue;

    private void AttachPlatform()
    {
        if (_machine.Platform is not { } platform)
        {
            return;
        }

        var self = Self;
        _machine.ConnectApicBus(m => self.Tell(new DeviceInterrupt(m)));
        _pit = platform.Pit;
        _pit.Counter0Loaded += () => self.Tell(PitProgrammed.Instance);

        // The 8259's INTR is wired to the BSP's LINT0 (the PC's virtual-wire mode, MP spec 3.6.2.2);
        // the PIC reports it from whatever thread drove it, under its lock, so only a message leaves.
        platform.Pic.IntrChanged += level => self.Tell(new PicOutput(level));
        Receive<PicOutput>(m => _lapics[0].Tell(new LapicProtocol.PicIntr(m.Level)));
        Receive<PitProgrammed>(_ => ArmPit());
        Receive<PitDue>(m =>
        {
            if (m.Generation == _pitGeneration && !_finished)
            {
                _pit.Poll();
                ArmPit();
            }
        });
    }

    /// <summary>create_pit_timer: (re-)arm the device timer for counter 0's next output edge; older timers are stale.</summary>
    private void ArmPit()
    {
        var generation = ++_pitGeneration;
        var next = _pit!.NextIrqTsc;
        Volatile.Write(ref _pitDeadline, next);
        if (next != ulong.MaxValue)
        {
            _timer.Schedule(next, Self, new PitDue(generation));
        }
    }

    private sealed record PitProgrammed
    {
        public static PitProgrammed Instance { get; } = new();
    }

    private sealed record PitDue(long Generation);

    private sealed record PicOutput(bool Level);
}
