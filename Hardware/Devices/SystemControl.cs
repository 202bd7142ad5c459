namespace ActorVm.Hardware.Devices;

/// <summary>Why the board asked for a reset or power-off.</summary>
public enum ResetSource
{
    Port92FastReset,
    ResetControlRegister,
    KeyboardController,
    BochsShutdownPort,
}

/// <summary>
/// The PC's reset paths: System Control Port A (0x92: A20 gate bit 1, fast reset bit 0), the
/// Reset Control Register (0xCF9: bit 2 performs the reset selected by bit 1), the keyboard
/// controller's pulse-reset command (0xFE to port 0x64), and Bochs' "Shutdown" string at 0x8900.
/// A reset of the VM ends the run like QEMU's -no-reboot: the owner observes <see cref="ResetRequested"/>.
/// </summary>
public sealed class SystemControl : IIoDevice
{
    public const ushort Port92 = 0x92, KbdCommand = 0x64, KbdData = 0x60, ResetControl = 0xCF9, BochsShutdown = 0x8900;

    private readonly object _lock = new();
    private byte _port92 = 0x02; // A20 enabled: we never wrap at 1 MiB
    private byte _cf9;
    private int _shutdownMatch;

    public event Action<ResetSource>? ResetRequested;

    /// <summary>The first reset the guest asked for, if any (a synchronous runner polls it like the debug-exit status).</summary>
    public ResetSource? Requested { get; private set; }

    public void Attach(IoBus bus)
    {
        bus.Register(Port92, 1, this);
        bus.Register(KbdData, 1, this);
        bus.Register(KbdCommand, 1, this);
        bus.Register(ResetControl, 1, this);
        bus.Register(BochsShutdown, 1, this);
    }

    public uint In(ushort port, int size)
    {
        lock (_lock)
        {
            return port switch
            {
                Port92 => _port92,
                ResetControl => _cf9,
                // i8042 status: output buffer empty, input buffer empty, system flag set.
                KbdCommand => 0x04,
                KbdData => 0,
                _ => 0xFF,
            };
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        ResetSource? reset = null;
        lock (_lock)
        {
            switch (port)
            {
                case Port92:
                    // A20 (bit 1) always reads as enabled; a 0→1 transition of bit 0 resets.
                    if ((value & 1) != 0 && (_port92 & 1) == 0)
                    {
                        reset = ResetSource.Port92FastReset;
                    }

                    _port92 = (byte)((value & 1) | 0x02);
                    break;
                case ResetControl:
                    _cf9 = (byte)(value & 0x0E);
                    if ((value & 0x04) != 0)
                    {
                        reset = ResetSource.ResetControlRegister;
                    }

                    break;
                case KbdCommand when (byte)value == 0xFE:
                    reset = ResetSource.KeyboardController;
                    break;
                case BochsShutdown:
                    const string word = "Shutdown";
                    _shutdownMatch = (char)(byte)value == word[_shutdownMatch] ? _shutdownMatch + 1 : ((char)(byte)value == word[0] ? 1 : 0);
                    if (_shutdownMatch == word.Length)
                    {
                        _shutdownMatch = 0;
                        reset = ResetSource.BochsShutdownPort;
                    }

                    break;
            }
        }

        if (reset is { } r)
        {
            Requested ??= r;
            ResetRequested?.Invoke(r);
        }
    }
}
