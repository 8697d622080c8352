#!/usr/bin/env python3
"""Rewrites the RUNPATH (or RPATH) of 64-bit little-endian ELF files in place.

Usage: scripts/elf_runpath.py OLD NEW FILE...

Every FILE whose RUNPATH/RPATH is exactly OLD gets NEW instead; other files are left alone.
NEW must not be longer than OLD: the string is overwritten inside the file's .dynstr and
padded with NUL bytes, so no section moves and no tool such as patchelf is needed.
Prints one line per file changed; exits 1 when a file cannot be read as ELF.
"""

import struct
import sys

DT_NULL, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 5, 15, 29
PT_LOAD, PT_DYNAMIC = 1, 2


def read_program_headers(data):
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for index in range(phnum):
        yield struct.unpack_from("<IIQQQQQQ", data, phoff + index * phentsize)


def file_offset(headers, address):
    """Maps a virtual address to a file offset through the PT_LOAD segments."""
    for kind, _flags, offset, vaddr, _paddr, filesz, _memsz, _align in headers:
        if kind == PT_LOAD and vaddr <= address < vaddr + filesz:
            return offset + (address - vaddr)
    raise ValueError(f"address {address:#x} is in no loaded segment")


def rewrite(path, old, new):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if data[:4] != b"\x7fELF":
        return False
    if data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    headers = list(read_program_headers(data))
    dynamic = [h for h in headers if h[0] == PT_DYNAMIC]
    if not dynamic:
        return False
    _kind, _flags, dyn_offset, _vaddr, _paddr, dyn_size, _memsz, _align = dynamic[0]
    strtab = None
    paths = []
    for position in range(dyn_offset, dyn_offset + dyn_size, 16):
        tag, value = struct.unpack_from("<qQ", data, position)
        if tag == DT_NULL:
            break
        if tag == DT_STRTAB:
            strtab = value
        elif tag in (DT_RPATH, DT_RUNPATH):
            paths.append(value)
    if strtab is None or not paths:
        return False
    changed = False
    strtab_offset = file_offset(headers, strtab)
    for string_index in paths:
        start = strtab_offset + string_index
        end = data.index(b"\x00", start)
        if bytes(data[start:end]) != old:
            continue
        data[start:end] = new + b"\x00" * (len(old) - len(new))
        changed = True
    if changed:
        with open(path, "r+b") as f:
            f.write(data)
    return changed


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__.strip().splitlines()[2])
    old, new = argv[1].encode(), argv[2].encode()
    if len(new) > len(old):
        sys.exit(f"elf_runpath: {argv[2]!r} is longer than {argv[1]!r}")
    failed = False
    for path in argv[3:]:
        try:
            if rewrite(path, old, new):
                print(f"elf_runpath: {path}: {argv[1]} -> {argv[2]}")
        except (OSError, ValueError, struct.error) as error:
            print(f"elf_runpath: {path}: {error}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv)
