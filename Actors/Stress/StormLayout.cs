namespace ActorVm.Actors.Stress;

/// <summary>
/// Where a storm guest keeps its code and its ledger (all below 1 MiB: the guests run in real
/// mode, each vCPU with its own segments). The host reads the ledger when the storm has drained.
/// </summary>
public static class StormLayout
{
    /// <summary>Common entry, storm loops and handlers (segment 0).</summary>
    public const ushort Code = 0x1000;

    /// <summary>The AP start page: SIPI vector 7 starts an AP at 0700:0000.</summary>
    public const byte SipiPage = 0x07;

    /// <summary>
    /// sipi-race start pages: 8 is the SIPI that ends each race and must win; 9 is the one the
    /// second INIT may override. Each stub tells the common entry where it came from in BP.
    /// </summary>
    public const byte WinningSipiPage = 0x08, OverriddenSipiPage = 0x09;

    /// <summary>sipi-race per-AP record of 16 bytes (ES = 0xE000 + id, in place of the periodic storm's tick times): boots via page 7, boots via page 9, SIPIs sent outside a race, NMIs sent.</summary>
    public const ulong RaceRecords = TickTimes;

    public const int BootsPage7 = 0, BootsPage9 = 4, SipisDropped = 8, NmisSent = 12;

    /// <summary>Globals (DS = 0x1000).</summary>
    public const ulong Globals = 0x10000;

    public const int Stop = 0x00, Done = 0x04, Started = 0x08, Duplicates = 0x10, TscDeadlineNotCleared = 0x14, Stray = 0x18, Boots = 0x1C;

    /// <summary>Per-vCPU record of 16 bytes (FS = 0x3000 + id): sent, received, timers armed, timers fired.</summary>
    public const ulong Records = 0x30000;

    public const int Sent = 0, Received = 4, Armed = 8, Fired = 12;

    /// <summary>Per-target IPI slot (GS = 0x4000), 16 bits: 0 free, else sender + 1.</summary>
    public const ulong Slots = 0x40000;

    /// <summary>Per-vCPU pair row of 512 bytes (ES = 0x5000 + id·32), only when vCPUs ≤ <see cref="PairLimit"/>: sent-to[t] then received-from[s].</summary>
    public const ulong Pairs = 0x50000;

    public const int PairLimit = 64;

    /// <summary>Per-vCPU stack of 128 bytes (SS = 0x6000 + id·8).</summary>
    public const ulong Stacks = 0x60000;

    /// <summary>Per-vCPU periodic-timer times (ES = 0xE000 + id in the periodic storm): TSC when armed, TSC at the last tick.</summary>
    public const ulong TickTimes = 0xE0000;

    public const int MaxVcpus = 4096;

    public const byte IpiVector = 0x40, SelfVectorMsr = 0x41, SelfVectorIcr = 0x42, PingVector = 0x44, TimerVector = 0x50, PeriodicVector = 0x51, SpuriousVector = 0xFF;

    /// <summary>sipi-race: a fixed IRQ left pending at APs halted with IF=0; its IVT entry is the stray handler, so a delivery shows.</summary>
    public const byte HeldVector = 0x45;

    public static ulong RaceRecord(int vcpu, int field) => RaceRecords + ((ulong)vcpu * 16) + (ulong)field;

    public static ulong Record(int vcpu, int field) => Records + ((ulong)vcpu * 16) + (ulong)field;

    public static ulong SentTo(int sender, int target) => Pairs + ((ulong)sender * 512) + ((ulong)target * 4);

    public static ulong ReceivedFrom(int target, int sender) => Pairs + ((ulong)target * 512) + 256 + ((ulong)sender * 4);
}
