"""The CPU as the int8 kernels see it: machine first, then the ISA from the source that speaks for this CPU.

The sources are given by hand here (as an emulator or a real board would show them); the emulated CI stage runs the
same detection under qemu on ARM64 and AVX2-only x86 and checks what it reports there.
"""

from rosberta_onnx.hardware import cpu_info, cpu_isa, detect, int8_native

# /proc/cpuinfo's first block on an AVX-512 VNNI + AMX host (what qemu-user shows every guest)
HOST_X86 = {
    "vendor_id": "GenuineIntel",
    "cpu family": "6",
    "model": "143",
    "model name": "Intel(R) Xeon(R) Platinum 8480+",
    "flags": "fpu sse2 avx f16c fma avx2 avx512f avx512bw avx512vl avx512_vnni avx_vnni avx512_bf16 avx512_fp16 "
    "amx_tile amx_int8 amx_bf16",
}
HASWELL = {
    "vendor_id": "GenuineIntel",
    "cpu family": "6",
    "model": "60",
    "model name": "Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz",
    "flags": "fpu sse2 avx f16c fma avx2",
}
# numpy's CPUID table (the keys it knows; values as the CPU answers)
SPR_CPUID = {
    "AVX": True,
    "FMA3": True,
    "F16C": True,
    "AVX2": True,
    "AVX512F": True,
    "AVX512BW": True,
    "AVX512VL": True,
    "AVX512VNNI": True,
    "AVX512BF16": True,
    "AVX512FP16": True,
}
HASWELL_CPUID = {**{k: False for k in SPR_CPUID}, "AVX": True, "FMA3": True, "F16C": True, "AVX2": True}
NEOVERSE_N1 = {
    "processor": "0",
    "Features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
    "CPU implementer": "0x41",
    "CPU part": "0xd0c",
}


def test_x86_host_reads_cpuid_and_takes_amx_from_a_consistent_listing():
    cpu = detect("x86_64", HOST_X86, numpy_features=SPR_CPUID)
    assert cpu.isa == "amx" and cpu.source == "cpuid" and not cpu.notes
    assert cpu.model_name.startswith("Intel(R) Xeon") and cpu.microarchitecture == "Sapphire Rapids"
    assert "AMX-INT8" in cpu.describe() and int8_native(cpu.isa)


def test_emulated_haswell_under_the_hosts_listing_is_avx2_and_says_the_listing_is_foreign():
    # qemu-x86_64 -cpu Haswell: CPUID says AVX2, /proc/cpuinfo is the AMX host's
    cpu = detect("x86_64", HOST_X86, numpy_features=HASWELL_CPUID)
    assert cpu.isa == "avx2" and not int8_native(cpu.isa)
    assert "amx_int8" not in cpu.flags and "avx_vnni" not in cpu.flags  # flags only /proc lists are set aside
    assert cpu.model_name == "x86-64 CPU" and cpu.family is None
    assert "describes another CPU" in cpu.describe() and "avx512_vnni" in cpu.notes[0]


def test_emulated_haswell_with_its_own_listing_is_named():
    cpu = detect("x86_64", HASWELL, numpy_features=HASWELL_CPUID)
    assert cpu.isa == "avx2" and not cpu.notes and cpu.microarchitecture == "Haswell"
    assert "AVX2 without VNNI" in cpu.describe()


def test_x86_without_numpys_table_falls_back_to_the_listing():
    cpu = detect("x86_64", HASWELL, numpy_features=None)
    assert cpu.isa == "avx2" and cpu.source == "/proc/cpuinfo"


def test_arm64_reads_hwcaps_not_an_x86_listing():
    # qemu-aarch64 on an x86 host: the kernel's (qemu's) hwcaps are the CPU's, /proc/cpuinfo is the host's
    dot = frozenset({"fp", "asimd", "asimddp"})
    cpu = detect("aarch64", HOST_X86, hwcaps=dot)
    assert cpu.isa == "arm64_dotprod" and cpu.source == "hwcap" and int8_native(cpu.isa)
    assert cpu.model_name == "ARM64 CPU" and "another machine" in cpu.notes[0]
    assert cpu.vendor == "" and "avx" not in " ".join(cpu.flags)


def test_arm64_boards_by_their_features_and_part_numbers():
    n1 = detect("aarch64", NEOVERSE_N1, hwcaps=frozenset(NEOVERSE_N1["Features"].split()))
    assert n1.isa == "arm64_dotprod" and n1.model_name == "ARM Neoverse-N1" and not n1.notes
    a72 = {**NEOVERSE_N1, "CPU part": "0xd08", "Features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"}
    pi4 = detect("aarch64", a72, hwcaps=frozenset(a72["Features"].split()))
    assert pi4.isa == "arm64_neon" and pi4.model_name == "ARM Cortex-A72"
    v1 = detect("aarch64", {}, hwcaps=frozenset({"fp", "asimd", "asimddp", "i8mm", "sve", "bf16"}))
    assert v1.isa == "arm64_i8mm" and "SVE" in v1.describe()
    # no hwcaps (macOS): numpy's table; ARMv8-A always has NEON
    mac = detect("aarch64", {}, numpy_features={"ASIMD": True, "ASIMDDP": True})
    assert mac.isa == "arm64_dotprod" and mac.source == "cpuid"
    assert cpu_isa(set(), machine="aarch64") == "arm64_neon"


def test_every_isa_has_an_int8_verdict_and_this_machine_is_described():
    assert [i for i in ("amx", "avx512_vnni", "avx_vnni", "arm64_neon") if not int8_native(i)] == []
    assert [i for i in ("avx512", "avx2", "x86", "unknown") if int8_native(i)] == []
    here = cpu_info()
    assert here.machine in here.describe() and here.isa != "unknown"
