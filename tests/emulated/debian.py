"""Debian packages without apt, dpkg or debootstrap: what the emulated-CPU stage needs, fetched from the mirror.

Two jobs, each cached under ``--cache``:

- ``qemu``: Debian's qemu-user-static (amd64) unpacked into a folder; prints the folder holding its binaries, and
  registers ``qemu-aarch64`` with binfmt_misc (the F flag: the kernel opens the interpreter now, so a chroot needs no
  copy of it) unless an enabled entry exists;
- ``root``: an arm64 root holding the dependency closure of the packages named (``python3``, ``libstdc++6`` ...),
  unpacked over a merged /usr as Debian lays it out, for ``chroot`` under qemu.

Why not apt: CI images come without gpgv or with no apt at all, or with a /dev/null that apt's sandbox user
cannot write (a regular file in its place, which an atomic rename onto ``-o /dev/null`` as root leaves: this
suite's footprint test did that until the atomic writers learnt to write devices in place); then ``apt-get
install qemu-user-static`` fails and the stage with it. This needs only Python and the mirror.
Integrity: the suite's InRelease is signature-checked with gpgv where gpgv and Debian's archive keyring are here;
every Packages index and package is checked against the SHA-256 that InRelease (or the index) records, and all of it
is fetched over https. Maintainer scripts are not run: the root is for running Python and Node, not for dpkg.

    python tests/emulated/debian.py qemu --cache DIR
    python tests/emulated/debian.py root --cache DIR --arch arm64 --out ROOT python3 libstdc++6
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

MIRROR = os.environ.get("DEBIAN_MIRROR_HTTPS", "https://deb.debian.org/debian")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def _get(url: str, tries: int = 3) -> bytes:
    error: OSError | None = None
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                return bytes(r.read())
        except OSError as e:
            error = e
    raise SystemExit(f"could not fetch {url}: {error} (set DEBIAN_MIRROR_HTTPS to another Debian mirror)")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def release(suite: str, cache: Path) -> dict[str, str]:
    """The suite's InRelease: path under dists/SUITE -> SHA-256. Signature-checked where gpgv can."""
    text = _get(f"{MIRROR}/dists/{suite}/InRelease")
    gpgv = shutil.which("gpgv")
    if gpgv and KEYRING.exists():
        signed = cache / f"{suite}.InRelease"
        signed.write_bytes(text)
        check = subprocess.run([gpgv, "--keyring", str(KEYRING), str(signed)], capture_output=True, text=True)
        if check.returncode:
            raise SystemExit(f"{suite}'s InRelease failed its signature check:\n{check.stderr}")
        print(f"[debian] {suite} InRelease: signature good ({KEYRING.name})", file=sys.stderr)
    else:
        print(f"[debian] {suite} InRelease: no gpgv or archive keyring here; trusting https", file=sys.stderr)
    sums: dict[str, str] = {}
    section = False
    for line in text.decode().splitlines():
        if not line.startswith(" "):
            section = line.strip() == "SHA256:"
        elif section:
            digest, _size, path = line.split()
            sums[path] = digest
    return sums


def index(suite: str, arch: str, cache: Path) -> dict[str, dict[str, str]]:
    """Package name -> its stanza (also under each name it Provides, where no real package has that name)."""
    path = f"main/binary-{arch}/Packages.xz"
    digest = release(suite, cache)[path]
    local = cache / f"Packages-{suite}-{arch}-{digest[:16]}.xz"
    if not local.exists():
        data = _get(f"{MIRROR}/dists/{suite}/{path}")
        if _sha256(data) != digest:
            raise SystemExit(f"{path}: SHA-256 differs from {suite}'s InRelease (a mirror mid-update? retry)")
        local.write_bytes(data)
    packages: dict[str, dict[str, str]] = {}
    provided: dict[str, dict[str, str]] = {}
    for block in lzma.decompress(local.read_bytes()).decode().split("\n\n"):
        stanza = dict(re.findall(r"^([\w-]+): (.*)$", block, re.M))
        if "Package" not in stanza:
            continue
        packages.setdefault(stanza["Package"], stanza)
        for name in _names(stanza.get("Provides", "")):
            provided.setdefault(name, stanza)
    return {**provided, **packages}


def _names(field: str) -> list[str]:
    """Package names of a comma-separated field, versions and architecture qualifiers dropped."""
    return [re.split(r"[\s(:]", item.strip(), maxsplit=1)[0] for item in field.split(",") if item.strip()]


def closure(idx: dict[str, dict[str, str]], wanted: list[str]) -> list[dict[str, str]]:
    """``wanted`` and everything they Depend or Pre-Depend on (the first alternative that exists), each once."""
    seen: dict[str, dict[str, str]] = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in idx:
            raise SystemExit(f"no package {name!r} in the index (check the name at packages.debian.org)")
        stanza = idx[name]
        if stanza["Package"] in seen:
            continue
        seen[stanza["Package"]] = stanza
        deps = ", ".join(filter(None, (stanza.get("Pre-Depends"), stanza.get("Depends"))))
        for group in deps.split(","):
            if not group.strip():
                continue
            options = [_names(alt)[0] for alt in group.split("|")]
            todo.append(next((o for o in options if o in idx), options[0]))
    return sorted(seen.values(), key=lambda s: s["Package"])


def fetch(stanza: dict[str, str], cache: Path) -> bytes:
    """The package's .deb, checked against the index's SHA-256 (cached under its digest)."""
    local = cache / "debs" / f"{stanza['SHA256'][:16]}-{Path(stanza['Filename']).name}"
    if local.exists():
        return local.read_bytes()
    data = _get(f"{MIRROR}/{stanza['Filename']}")
    if _sha256(data) != stanza["SHA256"]:
        raise SystemExit(f"{stanza['Filename']}: SHA-256 differs from the index's (retry; a mirror mid-update?)")
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.replace(local)
    return data


def unpack(deb: bytes, dest: Path) -> None:
    """A .deb's files into ``dest``: an ar archive whose ``data.tar.*`` member holds them."""
    if not deb.startswith(b"!<arch>\n"):
        raise SystemExit("not a .deb (no ar header)")
    pos = 8
    while pos < len(deb):
        name = deb[pos : pos + 16].decode().strip().rstrip("/")
        size = int(deb[pos + 48 : pos + 58].decode())
        body = deb[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                # Debian ships absolute symlinks, which the "data" filter refuses; the .deb matched the index
                tar.extractall(dest, filter="fully_trusted")
            return
        pos += 60 + size + (size & 1)
    raise SystemExit("a .deb without data.tar")


def build_root(suite: str, arch: str, wanted: list[str], out: Path, cache: Path) -> None:
    """An ``arch`` root with ``wanted`` and their dependencies, over a merged /usr; written beside, then renamed."""
    stanzas = closure(index(suite, arch, cache), wanted)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for d in ("bin", "sbin", "lib"):  # merged /usr, as debootstrap lays out bookworm
        (partial / "usr" / d).mkdir(parents=True)
        (partial / d).symlink_to(f"usr/{d}")
    for d in ("tmp", "root", "etc", "proc", "sys", "dev"):
        (partial / d).mkdir(exist_ok=True)
    (partial / "tmp").chmod(0o1777)
    total = 0
    for stanza in stanzas:
        deb = fetch(stanza, cache)
        total += len(deb)
        unpack(deb, partial)
    print(f"[debian] {arch} root: {len(stanzas)} packages, {total / 1e6:.0f} MB of .debs", file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)
    partial.replace(out)


def qemu(suite: str, cache: Path) -> Path:
    """qemu-user-static unpacked (cached); aarch64 registered with binfmt_misc unless an enabled entry exists."""
    (stanza,) = [s for s in closure(index(suite, "amd64", cache), ["qemu-user-static"]) if "qemu" in s["Package"]]
    home = cache / f"qemu-user-static-{stanza['Version'].replace(':', '_')}"
    if not (home / ".complete").exists():
        shutil.rmtree(home, ignore_errors=True)
        unpack(fetch(stanza, cache), home)
        (home / ".complete").touch()
    bin_dir = home / "usr" / "bin"
    entry = BINFMT / "qemu-aarch64"
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    if not (entry.exists() and "enabled" in entry.read_text()):
        # magic and mask as Debian's package declares them for update-binfmts
        spec = dict(
            line.split(" ", 1)
            for line in (home / "usr/share/binfmts/qemu-aarch64").read_text().splitlines()
            if " " in line
        )
        if entry.exists():  # registered but disabled: drop it, then register ours
            entry.write_text("-1")
        rule = f":qemu-aarch64:M::{spec['magic']}:{spec['mask']}:{bin_dir / 'qemu-aarch64-static'}:F"
        (BINFMT / "register").write_text(rule)
        print(f"[debian] binfmt_misc: qemu-aarch64 -> {bin_dir / 'qemu-aarch64-static'}", file=sys.stderr)
    return bin_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("job", choices=["qemu", "root"])
    ap.add_argument("packages", nargs="*", help="root: the packages to install (with their dependencies)")
    ap.add_argument("--cache", type=Path, required=True, help="downloads and unpacked packages are kept here")
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--arch", default="arm64", help="root: the Debian architecture")
    ap.add_argument("--out", type=Path, help="root: the folder to create")
    args = ap.parse_intermixed_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.job == "qemu":
        print(qemu(args.suite, args.cache))
    elif not (args.out and args.packages):
        ap.error("root needs --out and at least one package")
    else:
        build_root(args.suite, args.arch, args.packages, args.out, args.cache)


if __name__ == "__main__":
    main()
