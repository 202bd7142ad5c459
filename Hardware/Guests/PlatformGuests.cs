using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>
/// Guests that check the QEMU-pc platform and the local APIC the way kvm-unit-tests-style
/// kernels use them (issue 8, issue 4's guest-level tests). Each prints one line per check
/// ("NAME ok" / "NAME FAILED"), then PASS (debug-exit 0, status 1) or FAIL (status 3). They run
/// in 32-bit protected mode without paging, where every device address is reachable.
/// </summary>
public static partial class PlatformGuests
{
    public static IReadOnlyList<GuestProgram> All { get; } =
    [
        new("pc-devices", "fw_cfg, CMOS memory size, PIC masks, PIT channel 2 via port 0x61, PCI no-device, pc-testdev scratch/iomem, ACPI RSDP/MADT by scanning", BuildDevices),
        new("pc-ioapic", "pc-testdev IRQ lines and the PIT's IRQ 0 through the IOAPIC (edge and level, EOI) to LAPIC handlers", BuildIoApic),
        new("pc-pic", "the 8259 pair behind LINT0: pc-testdev line 3 and the PIT's IRQ 0 as ExtINT only while LINT0 is ExtINT-unmasked or the APIC is disabled, IMR masking with IRR latching, EOI to the PIC", BuildPicExtInt),
        new("pc-pic-lint0-masked", "pc-pic with LINT0 masked before the APIC is disabled: SDM 11.4.3's direct INTR (ActorVm only: QEMU 7.2 TCG drops the interrupt)", BuildPicExtIntLint0Masked),
        new("pc-reset", "prints a line and resets through port 0xCF9 (the run ends, as with QEMU -no-reboot)", BuildReset),
        new("cpu-rules", "NMIs blocked until IRET with one latched, #GP from a bad WRMSR and #UD from UD2 at the faulting instruction, the KVM PV send-IPI hypercall (ActorVm only: QEMU TCG has no KVM hypercalls)", BuildCpuRules),
        new("longmode-4m", "ELF32 with its program header at 4 MiB and a 4 MiB BSS: BSS zeroed, cmdline valid, long mode with a 4 GiB map, fw_cfg CPUs and the APIC ID (always ELF32)", HighLoadKernel.Build),
        new("cr8-apic-off", "64-bit: CR8 keeps its value while IA32_APIC_BASE.EN is clear, across a VM exit", BuildCr8ApicOff),
        new("apic-smp", "INIT/SIPI start-up of every AP through a trampoline at 0; self-IPI and the STI shadow, TPR masking, IPIs by physical/logical/broadcast destination, NMI to an AP; one-shot, periodic and TSC-deadline timers", BuildApicSmp),
    ];

    private static PcGuestKit Start()
    {
        var kit = new PcGuestKit(new MultibootKernelBuilder());
        var a = kit.A;
        a.mov(__dword_ptr[PcGuestKit.VarFailures], 0);
        kit.MaskPic();
        return kit;
    }
}
