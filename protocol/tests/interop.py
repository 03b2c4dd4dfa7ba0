"""The other side of tests/interop.rs: Google's protobuf for Python, built
by protoc from our proto/warden.proto, as an independent implementation.

    interop.py emit          print every case as "NAME HEX" (HEX: a whole
                             encoded warden.Message envelope)
    interop.py check FILE    read "NAME HEX" lines written by the Rust side
                             and compare each with the same case built here

The module warden_pb2 must be importable (PYTHONPATH). The case table below
is mirrored, by name, in tests/interop.rs.
"""

import sys

from google.protobuf import text_format

import warden_pb2 as pb

U64_MAX = 2**64 - 1
BM = pb.CreateRequest.BindMount


def rlimits(base):
    names = ["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue",
             "nice", "nofile", "nproc", "rss", "rtprio", "sigpending", "stack"]
    return pb.ResourceLimits(**{n: base + i for i, n in enumerate(names)})


MEMORY_FIELDS = [
    "cache", "rss", "mapped_file", "pgpgin", "pgpgout", "swap", "pgfault",
    "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "hierarchical_memory_limit", "hierarchical_memsw_limit",
    "total_cache", "total_rss", "total_mapped_file", "total_pgpgin",
    "total_pgpgout", "total_swap", "total_pgfault", "total_pgmajfault",
    "total_inactive_anon", "total_active_anon", "total_inactive_file",
    "total_active_file", "total_unevictable",
]


def full_info():
    return pb.InfoResponse(
        state="active",
        events=["oom", "other"],
        host_ip="10.254.0.1",
        container_ip="10.254.0.2",
        container_path="/var/warden/containers/abc",
        memory_stat=pb.InfoResponse.MemoryStat(
            **{n: 1000 * (i + 1) for i, n in enumerate(MEMORY_FIELDS)}),
        cpu_stat=pb.InfoResponse.CpuStat(usage=U64_MAX, user=2, system=3),
        disk_stat=pb.InfoResponse.DiskStat(bytes_used=4, inodes_used=0),
        bandwidth_stat=pb.InfoResponse.BandwidthStat(
            in_rate=6, in_burst=7, out_rate=8, out_burst=9),
        job_ids=[1, 2, 2**40],
    )


DISK = ["block_limit", "block", "block_soft", "block_hard",
        "inode_limit", "inode", "inode_soft", "inode_hard",
        "byte_limit", "byte", "byte_soft", "byte_hard"]
DISK_NUMBERS = [10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33]


def disk(cls, **kw):
    return cls(**kw, **{n: num * 1000 for n, num in zip(DISK, DISK_NUMBERS)})


# name -> (envelope type, message). Names: "<command>.<req|resp>.<variant>".
CASES = {
    "error.resp.full": ("Error", pb.ErrorResponse(
        message=b"\xfe oops", data=b"data\x00\xff", backtrace=[b"line 1", b"\xff line 2"])),
    "error.resp.min": ("Error", pb.ErrorResponse()),

    "create.req.full": ("Create", pb.CreateRequest(
        bind_mounts=[BM(src_path="/host/a", dst_path="/ctr/a", mode=BM.RO),
                     BM(src_path="/host/b", dst_path="/ctr/b", mode=BM.RW)],
        grace_time=300, handle="h-full", network="10.254.0.0/30", rootfs="/rootfs")),
    "create.req.min": ("Create", pb.CreateRequest()),
    "create.resp.full": ("Create", pb.CreateResponse(handle="h-full")),

    "stop.req.full": ("Stop", pb.StopRequest(handle="h", background=True, kill=False)),
    "stop.req.min": ("Stop", pb.StopRequest(handle="h")),
    "stop.resp.min": ("Stop", pb.StopResponse()),

    "destroy.req.full": ("Destroy", pb.DestroyRequest(handle="h")),
    "destroy.resp.min": ("Destroy", pb.DestroyResponse()),

    "info.req.full": ("Info", pb.InfoRequest(handle="h")),
    "info.resp.full": ("Info", full_info()),
    "info.resp.min": ("Info", pb.InfoResponse()),

    "spawn.req.full": ("Spawn", pb.SpawnRequest(
        handle="h", script=b"echo \xff\xfe; exit 3", privileged=True, rlimits=rlimits(1),
        discard_output=False, log_tag="tag")),
    "spawn.req.min": ("Spawn", pb.SpawnRequest(handle="h", script=b"")),
    "spawn.resp.full": ("Spawn", pb.SpawnResponse(job_id=42)),
    "spawn.resp.min": ("Spawn", pb.SpawnResponse(job_id=0)),

    "link.req.full": ("Link", pb.LinkRequest(handle="h", job_id=7)),
    "link.resp.full": ("Link", pb.LinkResponse(
        exit_status=3, stdout=b"\x80\x81 out", stderr=b"err\xff",
        info=pb.InfoResponse(state="stopped", job_ids=[7]))),
    "link.resp.min": ("Link", pb.LinkResponse()),

    "run.req.full": ("Run", pb.RunRequest(
        handle="h", script=b"\x00\xc3\x28 run", privileged=False, rlimits=rlimits(100),
        discard_output=True, log_tag="")),
    "run.req.min": ("Run", pb.RunRequest(handle="h", script=b"true")),
    "run.resp.full": ("Run", pb.RunResponse(
        exit_status=0, stdout=b"", stderr=b"\xff" * 3, info=full_info())),
    "run.resp.min": ("Run", pb.RunResponse()),

    "stream.req.full": ("Stream", pb.StreamRequest(handle="h", job_id=U64_MAX >> 32)),
    "stream.resp.full": ("Stream", pb.StreamResponse(
        name="stdout", data=b"\xc3\x28\x00", exit_status=255,
        info=pb.InfoResponse(events=["oom"]))),
    "stream.resp.min": ("Stream", pb.StreamResponse()),

    "net_in.req.full": ("NetIn", pb.NetInRequest(handle="h", host_port=61001, container_port=8080)),
    "net_in.req.min": ("NetIn", pb.NetInRequest(handle="h")),
    "net_in.resp.full": ("NetIn", pb.NetInResponse(host_port=61001, container_port=8080)),

    "net_out.req.full": ("NetOut", pb.NetOutRequest(
        handle="h", network="10.0.0.0/8", port=443, port_range="8080:9080",
        protocol=pb.NetOutRequest.ICMP, icmp_type=-1, icmp_code=-1, log=True)),
    "net_out.req.min": ("NetOut", pb.NetOutRequest(handle="h")),
    "net_out.resp.min": ("NetOut", pb.NetOutResponse()),

    "copy_in.req.full": ("CopyIn", pb.CopyInRequest(handle="h", src_path="/from", dst_path="/to")),
    "copy_in.resp.min": ("CopyIn", pb.CopyInResponse()),

    "copy_out.req.full": ("CopyOut", pb.CopyOutRequest(
        handle="h", src_path="/from", dst_path="/to", owner="vcap:vcap")),
    "copy_out.req.min": ("CopyOut", pb.CopyOutRequest(handle="h", src_path="", dst_path="")),
    "copy_out.resp.min": ("CopyOut", pb.CopyOutResponse()),

    "limit_memory.req.full": ("LimitMemory", pb.LimitMemoryRequest(handle="h", limit_in_bytes=2**30)),
    "limit_memory.req.min": ("LimitMemory", pb.LimitMemoryRequest(handle="h")),
    "limit_memory.resp.full": ("LimitMemory", pb.LimitMemoryResponse(limit_in_bytes=2**30)),
    "limit_memory.resp.min": ("LimitMemory", pb.LimitMemoryResponse()),

    "limit_disk.req.full": ("LimitDisk", disk(pb.LimitDiskRequest, handle="h")),
    "limit_disk.req.min": ("LimitDisk", pb.LimitDiskRequest(handle="h")),
    "limit_disk.resp.full": ("LimitDisk", disk(pb.LimitDiskResponse)),
    "limit_disk.resp.min": ("LimitDisk", pb.LimitDiskResponse()),

    "limit_bandwidth.req.full": ("LimitBandwidth", pb.LimitBandwidthRequest(handle="h", rate=1000, burst=2000)),
    "limit_bandwidth.resp.full": ("LimitBandwidth", pb.LimitBandwidthResponse(rate=1000, burst=2000)),
    "limit_bandwidth.resp.min": ("LimitBandwidth", pb.LimitBandwidthResponse(rate=0, burst=0)),

    "limit_cpu.req.full": ("LimitCpu", pb.LimitCpuRequest(handle="h", limit_in_shares=512)),
    "limit_cpu.req.min": ("LimitCpu", pb.LimitCpuRequest(handle="h")),
    "limit_cpu.resp.full": ("LimitCpu", pb.LimitCpuResponse(limit_in_shares=512)),
    "limit_cpu.resp.min": ("LimitCpu", pb.LimitCpuResponse()),

    "ping.req.min": ("Ping", pb.PingRequest()),
    "ping.resp.min": ("Ping", pb.PingResponse()),

    "list.req.min": ("List", pb.ListRequest()),
    "list.resp.full": ("List", pb.ListResponse(handles=["a", "b", ""])),
    "list.resp.min": ("List", pb.ListResponse()),

    "echo.req.full": ("Echo", pb.EchoRequest(message=b"\xff echo \x00")),
    "echo.req.min": ("Echo", pb.EchoRequest(message=b"")),
    "echo.resp.full": ("Echo", pb.EchoResponse(message=b"\xff echo \x00")),
}

# Fields this implementation does not know, appended raw to a payload and to
# its envelope: varint (999), length-delimited (1000), fixed32 (1001),
# fixed64 (1002).
UNKNOWN = (bytes([0xb8, 0x3e, 0x2a])
           + bytes([0xc2, 0x3e, 0x03]) + b"abc"
           + bytes([0xcd, 0x3e, 1, 2, 3, 4])
           + bytes([0xd1, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8]))

# Cases with unknown fields: same expected value as the case they extend.
UNKNOWN_OF = ["create.req.full", "run.req.full", "info.resp.full",
              "stream.resp.full", "error.resp.full", "ping.req.min"]

# Cases lacking a required field (sent with SerializePartialToString); the
# Rust side must name the field.
MISSING = {
    "missing.create.req.bind_mount_src_path": ("Create", pb.CreateRequest(
        handle="h", bind_mounts=[BM(src_path="/ok", dst_path="/ok", mode=BM.RO),
                                 BM(dst_path="/ctr", mode=BM.RW)])),
    "missing.run.req.script": ("Run", pb.RunRequest(handle="h", privileged=True)),
    "missing.spawn.req.handle": ("Spawn", pb.SpawnRequest(script=b"x")),
    "missing.copy_out.req.dst_path": ("CopyOut", pb.CopyOutRequest(handle="h", src_path="/a")),
    "missing.limit_bandwidth.req.burst": ("LimitBandwidth", pb.LimitBandwidthRequest(handle="h", rate=1)),
    "missing.net_in.resp.container_port": ("NetIn", pb.NetInResponse(host_port=1)),
    "missing.echo.resp.message": ("Echo", pb.EchoResponse()),
    "missing.create.resp.handle": ("Create", pb.CreateResponse()),
}


def envelope(type_name, payload):
    return pb.Message(type=pb.Message.Type.Value(type_name), payload=payload).SerializeToString()


def emit():
    out = []
    for name, (t, m) in CASES.items():
        out.append((name, envelope(t, m.SerializeToString())))
    for name in UNKNOWN_OF:
        t, m = CASES[name]
        out.append(("unknown." + name, envelope(t, m.SerializeToString() + UNKNOWN) + UNKNOWN))
    for name, (t, m) in MISSING.items():
        assert not m.IsInitialized(), name
        out.append((name, envelope(t, m.SerializePartialToString())))
    # The envelope itself lacking its payload.
    out.append(("missing.envelope.payload",
                pb.Message(type=pb.Message.Ping).SerializePartialToString()))
    for name, data in out:
        print(name, data.hex())


def check(path):
    seen = set()
    failures = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            name, _, hexdata = line.partition(" ")
            seen.add(name)
            if name not in CASES:
                failures.append(f"{name}: not a case known here")
                continue
            t, want = CASES[name]
            try:
                env = pb.Message()
                env.ParseFromString(bytes.fromhex(hexdata))
                if env.type != pb.Message.Type.Value(t):
                    failures.append(f"{name}: envelope type {env.type}, want {t}")
                    continue
                got = type(want)()
                got.ParseFromString(env.payload)
            except Exception as e:  # noqa: BLE001 - report any decode failure
                failures.append(f"{name}: python could not decode: {e!r}")
                continue
            # Rust must emit required fields even when they hold defaults
            # (this parser does not insist on them by itself).
            lacking = env.FindInitializationErrors() + got.FindInitializationErrors()
            if lacking:
                failures.append(f"{name}: required fields absent: {lacking}")
            elif got != want:
                failures.append(
                    f"{name}: mismatch\n--- got\n{text_format.MessageToString(got)}"
                    f"--- want\n{text_format.MessageToString(want)}")
            else:
                print("ok", name)
    for name in CASES:
        if name not in seen:
            failures.append(f"{name}: not sent by the Rust side")
    for f in failures:
        print("FAIL", f)
    print(f"python checked {len(seen)} cases, {len(failures)} failures")
    return 1 if failures else 0


def main():
    if sys.argv[1:] == ["emit"]:
        emit()
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        return check(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
