# proginfo.py ID...: for each BPF program id, "xlated_insns jited_bytes verified_insns
# run_time_ns run_cnt" from the kernel's own bpf_prog_info (BPF_OBJ_GET_INFO_BY_FD), since
# Debian's bpftool 7.1 does not print verified_insns. Run by scripts/bench.sh, as root.
import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF = 321  # x86_64
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 13, 15


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    r = libc.syscall(SYS_BPF, cmd, buf, len(attr))
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r


for pid in sys.argv[1:]:
    fd = bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("=III", int(pid), 0, 0).ljust(128, b"\0"))
    info = ctypes.create_string_buffer(256)
    attr = struct.pack("=IIQ", fd, 256, ctypes.addressof(info)).ljust(128, b"\0")
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    os.close(fd)
    raw = info.raw
    jited, xlated = struct.unpack_from("=II", raw, 16)
    run_ns, run_cnt = struct.unpack_from("=QQ", raw, 192)
    (verified,) = struct.unpack_from("=I", raw, 216)
    print(xlated // 8, jited, verified, run_ns, run_cnt)
