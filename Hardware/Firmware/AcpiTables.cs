using System.Buffers.Binary;
using System.Text;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware.Firmware;

/// <summary>
/// Minimal ACPI tables for guests that look for them (ACPI 6.x chapter 5): the RSDP in the BIOS
/// area (found by scanning 0xF0000-0xFFFFF), RSDT and XSDT, a FADT naming the PM timer port and
/// the reset register (0xCF9), an empty DSDT and FACS, and a MADT listing every vCPU (type 0
/// entries for APIC IDs below 255, type 9 x2APIC entries above), the I/O APIC and the ISA IRQ 0 →
/// GSI 2 override. The MADT lives in 0xE0000-0xEFFFF (it needs up to 64 KiB for 4096 vCPUs).
/// </summary>
public static class AcpiTables
{
    public const ulong RsdpAddress = 0xF0000;
    public const ulong TablesAddress = 0xF0100;
    public const ulong MadtAddress = 0xE0000;

    /// <summary>The physical range the tables occupy, to be reserved in the memory map.</summary>
    public static (ulong Start, ulong End) Reserved => (0xE0000, 0x100000);

    private const string OemId = "ACTRVM";
    private const string OemTableId = "ACTORVM ";

    public static void Install(GuestMemory memory, int vcpus)
    {
        var madt = Madt(vcpus);
        if (madt.Length > 0x10000)
        {
            throw new InvalidOperationException($"MADT for {vcpus} vCPUs does not fit the 64 KiB it is given");
        }

        var dsdt = Header("DSDT", 2, []);
        var facs = new byte[64];
        Encoding.ASCII.GetBytes("FACS").CopyTo(facs, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(facs.AsSpan(4), 64);

        var dsdtAt = TablesAddress;
        var facsAt = Align(dsdtAt + (ulong)dsdt.Length, 64);
        var fadtAt = Align(facsAt + 64, 16);
        var fadt = Fadt((uint)facsAt, (uint)dsdtAt);
        var rsdtAt = Align(fadtAt + (ulong)fadt.Length, 16);
        var rsdt = Header("RSDT", 1, [.. Le32((uint)fadtAt), .. Le32((uint)MadtAddress)]);
        var xsdtAt = Align(rsdtAt + (ulong)rsdt.Length, 16);
        var xsdt = Header("XSDT", 1, [.. Le64(fadtAt), .. Le64(MadtAddress)]);

        memory.WriteBytes(dsdtAt, dsdt);
        memory.WriteBytes(facsAt, facs);
        memory.WriteBytes(fadtAt, fadt);
        memory.WriteBytes(rsdtAt, rsdt);
        memory.WriteBytes(xsdtAt, xsdt);
        memory.WriteBytes(MadtAddress, madt);
        memory.WriteBytes(RsdpAddress, Rsdp((uint)rsdtAt, xsdtAt));
    }

    private static byte[] Rsdp(uint rsdt, ulong xsdt)
    {
        var r = new byte[36];
        Encoding.ASCII.GetBytes("RSD PTR ").CopyTo(r, 0);
        Encoding.ASCII.GetBytes(OemId).CopyTo(r, 9);
        r[15] = 2; // revision: ACPI 2.0+ with XSDT
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(16), rsdt);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(20), 36);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(24), xsdt);
        r[8] = Checksum(r.AsSpan(0, 20));
        r[32] = Checksum(r);
        return r;
    }

    private static byte[] Madt(int vcpus)
    {
        var body = new List<byte>();
        body.AddRange(Le32(0xFEE00000)); // local APIC address
        body.AddRange(Le32(1)); // PCAT_COMPAT: dual 8259s present
        for (var id = 0; id < vcpus; id++)
        {
            if (id < 255)
            {
                body.AddRange([0, 8, (byte)id, (byte)id, 1, 0, 0, 0]);
            }
            else
            {
                body.AddRange([9, 16, 0, 0, .. Le32((uint)id), .. Le32(1), .. Le32((uint)id)]);
            }
        }

        body.AddRange([1, 12, 0, 0, .. Le32((uint)IoApic.DefaultBase), .. Le32(0)]);
        // ISA IRQ 0 (PIT) is wired to GSI 2, as on every PC since the IOAPIC.
        body.AddRange([2, 10, 0, 0, .. Le32(2), 0, 0]);
        return Header("APIC", 4, [.. body]);
    }

    private static byte[] Fadt(uint facs, uint dsdt)
    {
        var f = new byte[276 - 36];
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(36 - 36), facs);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(40 - 36), dsdt);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(76 - 36), AcpiPmTimer.Port); // PM_TMR_BLK
        f[91 - 36] = 4; // PM_TMR_LEN
        // Flags (offset 112): WBINVD, PROC_C1, SLP_BUTTON, RESET_REG_SUP (bit 10), TMR_VAL_EXT clear (24-bit timer).
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(112 - 36), (1u << 0) | (1u << 2) | (1u << 5) | (1u << 10));
        // RESET_REG (offset 116): system I/O space, 8 bits, address 0xCF9; RESET_VALUE (128) 0x06.
        f[116 - 36] = 1;
        f[117 - 36] = 8;
        f[119 - 36] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(120 - 36), SystemControl.ResetControl);
        f[128 - 36] = 0x06;
        BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(132 - 36), facs); // X_FIRMWARE_CTRL
        BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(140 - 36), dsdt); // X_DSDT
        // X_PM_TMR_BLK (offset 208): I/O space, 32 bits.
        f[208 - 36] = 1;
        f[209 - 36] = 32;
        f[211 - 36] = 3;
        BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(212 - 36), AcpiPmTimer.Port);
        return Header("FACP", 6, f);
    }

    private static byte[] Header(string signature, byte revision, byte[] body)
    {
        var t = new byte[36 + body.Length];
        Encoding.ASCII.GetBytes(signature).CopyTo(t, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(4), (uint)t.Length);
        t[8] = revision;
        Encoding.ASCII.GetBytes(OemId).CopyTo(t, 10);
        Encoding.ASCII.GetBytes(OemTableId).CopyTo(t, 16);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(24), 1);
        Encoding.ASCII.GetBytes("AVM ").CopyTo(t, 28);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(32), 1);
        body.CopyTo(t, 36);
        t[9] = Checksum(t);
        return t;
    }

    /// <summary>The byte that makes the bytes sum to zero (mod 256).</summary>
    public static byte Checksum(ReadOnlySpan<byte> bytes)
    {
        byte sum = 0;
        foreach (var b in bytes)
        {
            sum += b;
        }

        return (byte)-sum;
    }

    private static ulong Align(ulong v, ulong a) => (v + a - 1) & ~(a - 1);

    private static byte[] Le32(uint v) => BitConverter.GetBytes(v);

    private static byte[] Le64(ulong v) => BitConverter.GetBytes(v);
}
