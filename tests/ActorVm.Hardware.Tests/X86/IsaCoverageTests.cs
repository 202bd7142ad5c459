using ActorVm.Hardware.X86;
using Iced.Intel;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>Every legacy (and BMI1 VEX) encoding of the general-purpose integer mnemonics has a handler.</summary>
public class IsaCoverageTests
{
    private static readonly Mnemonic[] Mnemonics =
    [
        Mnemonic.Mov, Mnemonic.Movzx, Mnemonic.Movsx, Mnemonic.Movsxd, Mnemonic.Lea, Mnemonic.Xchg, Mnemonic.Bswap,
        Mnemonic.Cbw, Mnemonic.Cwde, Mnemonic.Cdqe, Mnemonic.Cwd, Mnemonic.Cdq, Mnemonic.Cqo, Mnemonic.Xlatb, Mnemonic.Nop,
        Mnemonic.Endbr32, Mnemonic.Endbr64,
        Mnemonic.Add, Mnemonic.Adc, Mnemonic.Sub, Mnemonic.Sbb, Mnemonic.Cmp, Mnemonic.Inc, Mnemonic.Dec, Mnemonic.Neg,
        Mnemonic.Not, Mnemonic.And, Mnemonic.Or, Mnemonic.Xor, Mnemonic.Test, Mnemonic.Mul, Mnemonic.Imul, Mnemonic.Div,
        Mnemonic.Idiv, Mnemonic.Daa, Mnemonic.Das, Mnemonic.Aaa, Mnemonic.Aas, Mnemonic.Aam, Mnemonic.Aad,
        Mnemonic.Shl, Mnemonic.Sal, Mnemonic.Shr, Mnemonic.Sar, Mnemonic.Rol, Mnemonic.Ror, Mnemonic.Rcl, Mnemonic.Rcr,
        Mnemonic.Shld, Mnemonic.Shrd, Mnemonic.Bt, Mnemonic.Bts, Mnemonic.Btr, Mnemonic.Btc, Mnemonic.Bsf, Mnemonic.Bsr,
        Mnemonic.Tzcnt, Mnemonic.Lzcnt, Mnemonic.Popcnt, Mnemonic.Andn, Mnemonic.Bextr, Mnemonic.Blsi, Mnemonic.Blsmsk, Mnemonic.Blsr,
        Mnemonic.Loop, Mnemonic.Loope, Mnemonic.Loopne, Mnemonic.Jcxz, Mnemonic.Jecxz, Mnemonic.Jrcxz,
        Mnemonic.Pusha, Mnemonic.Pushad, Mnemonic.Popa, Mnemonic.Popad, Mnemonic.Enter, Mnemonic.Leave,
        Mnemonic.Pushf, Mnemonic.Pushfd, Mnemonic.Pushfq, Mnemonic.Popf, Mnemonic.Popfd, Mnemonic.Popfq, Mnemonic.Lahf, Mnemonic.Sahf,
        Mnemonic.Clc, Mnemonic.Stc, Mnemonic.Cmc, Mnemonic.Cld, Mnemonic.Std,
        Mnemonic.Movsb, Mnemonic.Movsw, Mnemonic.Movsd, Mnemonic.Movsq, Mnemonic.Stosb, Mnemonic.Stosw, Mnemonic.Stosd, Mnemonic.Stosq,
        Mnemonic.Lodsb, Mnemonic.Lodsw, Mnemonic.Lodsd, Mnemonic.Lodsq, Mnemonic.Cmpsb, Mnemonic.Cmpsw, Mnemonic.Cmpsd, Mnemonic.Cmpsq,
        Mnemonic.Scasb, Mnemonic.Scasw, Mnemonic.Scasd, Mnemonic.Scasq, Mnemonic.Insb, Mnemonic.Insw, Mnemonic.Insd,
        Mnemonic.Outsb, Mnemonic.Outsw, Mnemonic.Outsd, Mnemonic.Xadd, Mnemonic.Cmpxchg, Mnemonic.Cmpxchg8b, Mnemonic.Cmpxchg16b,
    ];

    [Fact]
    public void EveryGeneralPurposeFormHasAHandler()
    {
        var missing = Enum.GetValues<Code>()
            .Where(c => Mnemonics.Contains(c.Mnemonic()) || c.IsJccShortOrNear() || c.Mnemonic().ToString().StartsWith("Cmov", StringComparison.Ordinal)
                || (c.Mnemonic().ToString().StartsWith("Set", StringComparison.Ordinal) && c.ConditionCode() != ConditionCode.None))
            .Where(c => c.Encoding() == EncodingKind.Legacy || c.Mnemonic() is Mnemonic.Andn or Mnemonic.Bextr or Mnemonic.Blsi or Mnemonic.Blsmsk or Mnemonic.Blsr)
            .Where(c => !IsOtherGroup(c))
            .Where(c => !InstructionTable.IsImplemented(c))
            .ToList();
        Assert.True(missing.Count == 0, "unimplemented: " + string.Join(", ", missing));
    }

    /// <summary>MOV Sreg/CR/DR/TR, SSE MOVSD/CMPSD and the like belong to other groups.</summary>
    private static bool IsOtherGroup(Code c)
    {
        var n = c.ToString();
        return n.Contains("Sreg", StringComparison.Ordinal) || n.Contains("_cr", StringComparison.Ordinal) || n.Contains("_dr", StringComparison.Ordinal)
            || n.Contains("_tr", StringComparison.Ordinal) || n.Contains("xmm", StringComparison.Ordinal) || n.Contains("Reservednop", StringComparison.Ordinal)
            || n.Contains("EVEX", StringComparison.Ordinal) || n.StartsWith("XOP", StringComparison.Ordinal) || n.Contains("VEX", StringComparison.Ordinal) && !n.Contains("_r32", StringComparison.Ordinal) && !n.Contains("_r64", StringComparison.Ordinal);
    }
}
