using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
    public static byte[] BuildDevices(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        var c = kit.C;

        // fw_cfg: the signature "QEMU" and the CPU count (QEMU's fw_cfg_arch_create).
        kit.ReadFwCfg32(Devices.FwCfg.Signature);
        kit.Check("fw_cfg signature", (x, bad) =>
        {
            x.cmp(eax, 0x554D4551); // "QEMU"
            x.jne(bad);
        });
        kit.ReadFwCfg32(Devices.FwCfg.NbCpus);
        a.mov(__dword_ptr[PcGuestKit.VarCpus], eax);
        c.Print("fw_cfg cpus 0x");
        a.mov(eax, __dword_ptr[PcGuestKit.VarCpus]);
        c.PrintHexEax();
        c.Print("\n");

        // CMOS 0x34/0x35: RAM above 16 MiB in 64 KiB units (128 MiB → 0x0700).
        kit.ReadCmos(0x35);
        a.movzx(esi, al);
        a.shl(esi, 8);
        kit.ReadCmos(0x34);
        a.movzx(eax, al);
        a.or(eax, esi);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        c.Print("cmos mem above 16M 0x"); // printing clobbers EAX/ESI
        a.mov(eax, __dword_ptr[PcGuestKit.VarSeen]);
        c.PrintHexEax();
        c.Print("\n");

        // 8259 masks read back as written (OCW1).
        a.mov(al, 0xA5);
        a.@out(0x21, al);
        a.mov(al, 0x5A);
        a.@out(0xA1, al);
        a.@in(al, 0x21);
        a.mov(ah, al);
        a.@in(al, 0xA1);
        a.movzx(eax, ax);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        kit.CheckEquals("pic masks", PcGuestKit.VarSeen, 0xA55A);
        kit.MaskPic();

        // PIT channel 2, mode 0, gated through port 0x61: OUT2 (bit 5) low after the count is
        // loaded, high once it ran out.
        a.@in(al, 0x61);
        a.and(al, 0xFC);
        a.@out(0x61, al); // gate off, speaker off
        a.mov(al, 0xB0);  // channel 2, LSB then MSB, mode 0, binary
        a.@out(0x43, al);
        a.mov(al, 0x00);
        a.@out(0x42, al);
        // 0xFF00 ticks ≈ 55 ms: each port access is a VM exit, and on a loaded host the check
        // must still run before the count does.
        a.mov(al, 0xFF);
        a.@out(0x42, al);
        a.@in(al, 0x61);
        a.or(al, 1);
        a.@out(0x61, al); // gate on
        a.@in(al, 0x61);
        kit.Check("pit ch2 out low after load", (x, bad) =>
        {
            x.test(al, 0x20);
            x.jnz(bad);
        });
        var pitLoop = a.CreateLabel();
        var pitDone = a.CreateLabel();
        a.mov(ecx, 50_000_000);
        a.Label(ref pitLoop);
        a.@in(al, 0x61);
        a.test(al, 0x20);
        a.jnz(pitDone);
        a.dec(ecx);
        a.jnz(pitLoop);
        a.Label(ref pitDone);
        kit.Check("pit ch2 out high after count", (x, bad) =>
        {
            x.test(al, 0x20);
            x.jz(bad);
        });

        // PCI: an empty slot (bus 0, device 31) reads all ones.
        a.mov(dx, 0xCF8);
        a.mov(eax, 0x8000F800);
        a.@out(dx, eax);
        a.mov(dx, 0xCFC);
        a.@in(eax, dx);
        kit.Check("pci empty slot all-ones", (x, bad) =>
        {
            x.cmp(eax, -1);
            x.jne(bad);
        });

        // pc-testdev: the scratch register at 0xE0 and the RAM-like iomem window.
        a.mov(eax, 0x12345678);
        a.@out(0xE0, eax);
        a.@in(eax, 0xE0);
        kit.Check("testdev scratch", (x, bad) =>
        {
            x.cmp(eax, 0x12345678);
            x.jne(bad);
        });
        a.mov(__dword_ptr[(uint)Devices.PcTestDev.IomemBase + 0x40], 0xCAFEF00D);
        a.mov(__byte_ptr[(uint)Devices.PcTestDev.IomemBase + 0x41], 0x11);
        a.mov(eax, __dword_ptr[(uint)Devices.PcTestDev.IomemBase + 0x40]);
        kit.Check("testdev iomem", (x, bad) =>
        {
            x.cmp(eax, unchecked((int)0xCAFE110D));
            x.jne(bad);
        });

        // ACPI: scan the BIOS area for "RSD PTR ", follow the RSDT to the MADT, count its
        // enabled processor entries and find the IOAPIC.
        var scan = a.CreateLabel();
        var found = a.CreateLabel();
        var noRsdp = a.CreateLabel();
        a.mov(esi, 0xE0000);
        a.Label(ref scan);
        a.cmp(__dword_ptr[esi], 0x20445352); // "RSD "
        a.jne(noRsdp);
        a.cmp(__dword_ptr[esi + 4], 0x20525450); // "PTR "
        a.je(found);
        a.Label(ref noRsdp);
        a.add(esi, 16);
        a.cmp(esi, 0x100000);
        a.jb(scan);
        a.xor(esi, esi);
        a.Label(ref found);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], esi);
        kit.Check("acpi rsdp found", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.VarSeen], 0);
            x.je(bad);
        });

        // RSDT: entries from +36 to its length; find "APIC".
        var nextTable = a.CreateLabel();
        var madt = a.CreateLabel();
        var tablesDone = a.CreateLabel();
        a.xor(edi, edi);
        a.mov(esi, __dword_ptr[PcGuestKit.VarSeen]); // printing clobbered ESI
        a.test(esi, esi);
        a.jz(tablesDone);
        a.mov(ebx, __dword_ptr[esi + 16]); // RSDT address
        a.mov(edx, __dword_ptr[ebx + 4]);  // length
        a.add(edx, ebx);
        a.lea(esi, __[ebx + 36]);
        a.Label(ref nextTable);
        a.cmp(esi, edx);
        a.jae(tablesDone);
        a.mov(eax, __dword_ptr[esi]);
        a.cmp(__dword_ptr[eax], 0x43495041); // "APIC"
        a.je(madt);
        a.add(esi, 4);
        a.jmp(nextTable);
        a.Label(ref madt);
        a.mov(edi, eax);
        a.Label(ref tablesDone);

        // MADT entries from +44: type 0 (processor local APIC, flags bit 0 = enabled), type 1 (IOAPIC).
        var entry = a.CreateLabel();
        var notCpu = a.CreateLabel();
        var advance = a.CreateLabel();
        var madtDone = a.CreateLabel();
        a.mov(__dword_ptr[PcGuestKit.VarSeen], 0);
        a.mov(__dword_ptr[PcGuestKit.VarFlag], 0);
        a.test(edi, edi);
        a.jz(madtDone);
        a.mov(edx, __dword_ptr[edi + 4]);
        a.add(edx, edi);
        a.lea(esi, __[edi + 44]);
        a.Label(ref entry);
        a.cmp(esi, edx);
        a.jae(madtDone);
        a.cmp(__byte_ptr[esi], 0);
        a.jne(notCpu);
        a.test(__byte_ptr[esi + 4], 1);
        a.jz(advance);
        a.inc(__dword_ptr[PcGuestKit.VarSeen]);
        a.jmp(advance);
        a.Label(ref notCpu);
        a.cmp(__byte_ptr[esi], 1);
        a.jne(advance);
        a.mov(eax, __dword_ptr[esi + 4]);
        a.mov(__dword_ptr[PcGuestKit.VarFlag], eax);
        a.Label(ref advance);
        a.movzx(eax, __byte_ptr[esi + 1]);
        a.test(eax, eax);
        a.jz(madtDone);
        a.add(esi, eax);
        a.jmp(entry);
        a.Label(ref madtDone);
        c.Print("madt cpus 0x");
        a.mov(eax, __dword_ptr[PcGuestKit.VarSeen]);
        c.PrintHexEax();
        c.Print("\n");
        kit.Check("madt cpus match fw_cfg", (x, bad) =>
        {
            x.mov(eax, __dword_ptr[PcGuestKit.VarSeen]);
            x.cmp(eax, __dword_ptr[PcGuestKit.VarCpus]);
            x.jne(bad);
        });
        kit.CheckEquals("madt ioapic at 0xfec00000", PcGuestKit.VarFlag, PcGuestKit.IoApicBase);

        kit.Finish();
        return kit.Kernel.Build(format);
    }
}
