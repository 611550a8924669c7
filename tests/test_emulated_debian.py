"""The emulated stage's apt-free Debian fetcher: dependency closure and .deb unpacking, on packages built here
(the stage itself fetches the real ones from the mirror)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.emulated import debian


def _deb(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    """A .deb as dpkg-deb writes one: ar with debian-binary, control.tar.xz and data.tar.xz."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name, target in links.items():
            info = tarfile.TarInfo(f"./{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b"odd"), ("data.tar.xz", data.getvalue())]
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    return out


def test_unpack_reads_the_data_member_after_an_odd_sized_one_and_keeps_absolute_links(tmp_path: Path) -> None:
    deb = _deb({"usr/bin/tool": b"#!/bin/sh\n"}, {"lib/ld.so": "/usr/lib/ld.so"})
    debian.unpack(deb, tmp_path)
    assert (tmp_path / "usr/bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert (tmp_path / "lib/ld.so").readlink() == Path("/usr/lib/ld.so")


def test_unpack_refuses_what_is_not_a_deb(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a .deb"):
        debian.unpack(b"PK\x03\x04", tmp_path)


def test_closure_follows_pre_depends_alternatives_and_provides_once_each() -> None:
    stanzas = {
        "python3": {"Package": "python3", "Pre-Depends": "python3-minimal (= 3.11)", "Depends": "mail | media-types"},
        "python3-minimal": {"Package": "python3-minimal", "Depends": "libc6 (>= 2.36), zlib1g:any"},
        "media-types": {"Package": "media-types"},
        "libc6": {"Package": "libc6", "Provides": "libc"},
        "zlib1g": {"Package": "zlib1g", "Depends": "libc"},
    }
    idx = {**{"libc": stanzas["libc6"]}, **stanzas}
    names = [s["Package"] for s in debian.closure(idx, ["python3"])]
    assert names == ["libc6", "media-types", "python3", "python3-minimal", "zlib1g"]


def test_closure_names_a_package_the_index_lacks() -> None:
    with pytest.raises(SystemExit, match="no package 'pyhton3'"):
        debian.closure({}, ["pyhton3"])
