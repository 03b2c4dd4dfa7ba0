#!/usr/bin/env bash
# Byte compatibility of the Rust helpers with Cloud Foundry's C helpers, both
# ways round.
#
#   tests/compat/run.sh C_BIN_DIR RUST_BIN_DIR ROOTFS
#
# C_BIN_DIR holds the reference wsh, wshd, iomux-spawn and iomux-link built
# from cloudfoundry/warden's warden/src/{wsh,iomux} (not shipped here: build
# them yourself); RUST_BIN_DIR holds ours (target/<triple>/{debug,release});
# ROOTFS is a busybox rootfs (setup-scripts/rootfs/busybox.sh --with rsync).
# The three may also come from C_BIN_DIR, RUST_BIN_DIR and ROOTFS in the
# environment. Needs root, python3 and util-linux's script(1).
#
# Pairings: every wsh against every wshd and every iomux-link against every
# iomux-spawn (the C/C and Rust/Rust ones are the baselines that show the
# harness itself is right), plus byte-for-byte comparisons of what each side
# puts on the wire. Ends with "N passed, N failed"; exit 0 only when nothing
# failed.
#
# Harness-only workarounds for the C wshd (never applied to ours):
# - its before-clone hook makes the mounts of wshd's namespace private first
#   (the C wshd does not, so on a host where / is shared its overlay mount
#   would reach the host and pivot_root would refuse a shared parent);
# - its before-pivot hook lazily detaches every mount of the old root but /,
#   /proc and the container's own, because the C wshd unmounts the old root
#   one mount at a time and fails with EBUSY on stacked mounts (two mounts on
#   one path, e.g. /dev/shm and /dev/pts on some hosts).
set -u

C_BIN_DIR=${1:-${C_BIN_DIR:-}}
RUST_BIN_DIR=${2:-${RUST_BIN_DIR:-}}
ROOTFS=${3:-${ROOTFS:-}}

die() { echo "compat: $*" >&2; exit 2; }

[ -n "$C_BIN_DIR" ] && [ -n "$RUST_BIN_DIR" ] && [ -n "$ROOTFS" ] ||
  die "usage: run.sh C_BIN_DIR RUST_BIN_DIR ROOTFS"
[ "$(id -u)" = 0 ] || die "needs root (namespaces, mounts)"
for b in wsh wshd iomux-spawn iomux-link; do
  [ -x "$C_BIN_DIR/$b" ] || die "$C_BIN_DIR/$b is missing"
  [ -x "$RUST_BIN_DIR/$b" ] || die "$RUST_BIN_DIR/$b is missing"
done
[ -x "$ROOTFS/bin/busybox" ] || die "$ROOTFS does not look like a busybox rootfs"
command -v python3 >/dev/null || die "python3 is needed for the raw-socket checks"
command -v script >/dev/null || die "script(1) (util-linux) is needed for the tty checks"
ROOTFS=$(realpath "$ROOTFS")

# Descriptors we were started with beyond stdio would reach wshd, and the C
# wshd hands whatever it inherited down to every child: close them so the
# fd checks test the helpers, not whoever started us.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  case "$fd" in 0 | 1 | 2 | 255) ;; *) eval "exec $fd>&-" 2>/dev/null ;; esac
done

WORK=$(mktemp -d /tmp/compat.XXXXXX) || die "mktemp"
PASS=0
FAIL=0
CONTAINERS=()  # instance dirs whose init must be killed at exit

# Copies, so that a rebuild while this runs changes nothing under our feet.
mkdir -p "$WORK/bin/c" "$WORK/bin/rust"
for b in wsh wshd iomux-spawn iomux-link; do
  cp "$C_BIN_DIR/$b" "$WORK/bin/c/$b"
  cp "$RUST_BIN_DIR/$b" "$WORK/bin/rust/$b"
done

pass() { PASS=$((PASS + 1)); echo "ok   $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" = "$3" ]; then
    pass "$1"
  else
    fail "$1: expected $(printf %q "$2"), got $(printf %q "$3")"
  fi
}

# check_files NAME EXPECTED_FILE ACTUAL_FILE: byte-for-byte, naming the first
# differing offset.
check_files() {
  local diff
  if diff=$(cmp "$2" "$3" 2>&1); then
    pass "$1"
  else
    fail "$1: $diff (sizes $(stat -c %s "$2" 2>/dev/null || echo -)/$(stat -c %s "$3" 2>/dev/null || echo -))"
  fi
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  while ! "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

proc_gone() { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

kill_container() {
  local dir=$1 pid
  pid=$(cat "$dir/run/wshd.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  # It is pid 1 of its namespace: SIGKILL takes every process of it along.
  kill -KILL "$pid" 2>/dev/null
  wait_for 10 proc_gone "$pid" || echo "compat: container init $pid did not die" >&2
  rm -f "$dir/run/wshd.pid"
}

cleanup() {
  local d p
  # Only background jobs still in our job table: a pid reaped already
  # may belong to someone else by now.
  for p in $(jobs -p); do kill -KILL "$p" 2>/dev/null; done
  for d in "${CONTAINERS[@]}"; do kill_container "$d"; done
  wait 2>/dev/null
  # The overlays live only in the containers' mount namespaces; by now those
  # are gone. Refuse to delete a directory something is still mounted on.
  if grep -q " $WORK/" /proc/self/mountinfo; then
    echo "compat: mounts left under $WORK, not removing it:" >&2
    grep " $WORK/" /proc/self/mountinfo >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------

# start_container DIR WSHD FLAVOUR(c|rust): an instance (run/, lib/ with the
# four hooks, mnt/ = overlay of ROOTFS) started by WSHD. Returns non-zero and
# prints wshd's log when it does not come up.
start_container() {
  local dir=$1 wshd=$2 flavour=$3
  mkdir -p "$dir"/{run,lib,mnt,upper,work}
  CONTAINERS+=("$dir")
  {
    echo '#!/bin/sh'
    echo 'set -e'
    echo 'cd "$(dirname "$0")/.."'
    [ "$flavour" = c ] && echo 'mount --make-rprivate /'
    echo "mount -t overlay overlay -o \"lowerdir=$ROOTFS,upperdir=\$PWD/upper,workdir=\$PWD/work\" mnt"
    echo "cp '$wshd' mnt/sbin/wshd"
    echo 'chmod 0755 mnt/sbin/wshd'
    echo 'mkdir -p mnt/dev mnt/proc'
    echo 'rm -rf mnt/dev/null mnt/dev/zero mnt/dev/random mnt/dev/urandom mnt/dev/tty mnt/dev/ptmx mnt/dev/pts mnt/dev/shm'
    echo 'mknod -m 0666 mnt/dev/null c 1 3'
    echo 'mknod -m 0666 mnt/dev/zero c 1 5'
    echo 'mknod -m 0666 mnt/dev/random c 1 8'
    echo 'mknod -m 0666 mnt/dev/urandom c 1 9'
    echo 'mknod -m 0666 mnt/dev/tty c 5 0'
    echo 'ln -s pts/ptmx mnt/dev/ptmx'
    echo 'mkdir -p mnt/dev/pts mnt/dev/shm'
  } >"$dir/lib/hook-parent-before-clone.sh"
  cat >"$dir/lib/hook-parent-after-clone.sh" <<'EOF'
#!/bin/sh
set -e
cd "$(dirname "$0")/.."
echo "$PID" > run/wshd.pid
EOF
  if [ "$flavour" = c ]; then
    cat >"$dir/lib/hook-child-before-pivot.sh" <<'EOF'
#!/bin/sh
# Leave the old root only what the C wshd's unmount-by-list can take apart:
# /, /proc (it reads /mnt/proc/mounts), the container's root and whatever
# holds this instance directory.
inst=$(realpath "$(dirname "$0")/..")
awk '{print $2}' /proc/self/mounts | sort -ru | while read -r m; do
  case "$m" in
    /|/proc|"$inst/mnt"|"$inst/mnt"/*) continue ;;
  esac
  case "$inst/" in "$m"/*) continue ;; esac
  umount -l "$m" 2>/dev/null || true
done
exit 0
EOF
  else
    printf '#!/bin/sh\nexit 0\n' >"$dir/lib/hook-child-before-pivot.sh"
  fi
  cat >"$dir/lib/hook-child-after-pivot.sh" <<'EOF'
#!/bin/sh
set -e
mount -t proc proc /proc
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname compat
EOF
  chmod 0755 "$dir"/lib/*.sh
  timeout 30 "$wshd" --run "$dir/run" --lib "$dir/lib" --root "$dir/mnt" --title "wshd: compat" \
    </dev/null >"$dir/run/wshd.out.log" 2>"$dir/run/wshd.err.log"
  local rc=$?
  if [ $rc -ne 0 ] || [ ! -S "$dir/run/wshd.sock" ] || [ ! -s "$dir/run/wshd.pid" ]; then
    echo "compat: $wshd did not come up (exit $rc); its log:" >&2
    sed 's/^/  | /' "$dir/run/wshd.out.log" "$dir/run/wshd.err.log" >&2
    return 1
  fi
}

# --------------------------------------------------------------------------
# wsh <-> wshd
# --------------------------------------------------------------------------

# wsh_run WSH SOCKET STDIN_FILE [VAR=VALUE...] -- ARGS...: runs WSH with a
# clean environment plus the VARs; sets RC, OUT, ERR.
wsh_run() {
  local wsh=$1 sock=$2 in=$3
  shift 3
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  OUT=$WORK/out ERR=$WORK/err
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${envs[@]}" \
    timeout 30 "$wsh" --socket "$sock" "$@" <"$in" >"$OUT" 2>"$ERR"
  RC=$?
}

out() { cat "$OUT"; }

# sorted_env: the child's environment, one per line, sorted.
sorted_env() { sort "$OUT" | tr '\n' ' ' | sed 's/ $//'; }

wsh_pairing() {
  local label=$1 wsh=$2 sock=$3
  local t="[$label]"
  local NUL=/dev/null

  wsh_run "$wsh" "$sock" $NUL -- true
  check "$t exit 0" 0 "$RC"
  wsh_run "$wsh" "$sock" $NUL -- false
  check "$t exit 1" 1 "$RC"
  wsh_run "$wsh" "$sock" $NUL -- sh -c 'exit 42'
  check "$t exit 42" 42 "$RC"
  wsh_run "$wsh" "$sock" $NUL -- sh -c 'kill -9 $$'
  check "$t killed by a signal -> 255" 255 "$RC"
  wsh_run "$wsh" "$sock" $NUL -- no-such-command
  check "$t exec failure -> 255" 255 "$RC"

  wsh_run "$wsh" "$sock" $NUL -- sh -c 'printf out1; printf err1 >&2; printf out2; exit 3'
  check "$t stdout separate" out1out2 "$(out)"
  check "$t stderr separate" err1 "$(cat "$ERR")"
  check "$t exit 3 with output" 3 "$RC"

  wsh_run "$wsh" "$sock" $NUL -- echo "a  b" c
  check "$t argv kept word for word" "a  b c" "$(out)"

  # Output much larger than a pipe buffer, produced right before exit: wsh
  # must drain it all after the exit status arrives.
  yes 0123456789abcdef | head -c 300000 >"$WORK/big"
  wsh_run "$wsh" "$sock" $NUL -- sh -c 'yes 0123456789abcdef | head -c 300000'
  check_files "$t 300000 bytes of stdout intact" "$WORK/big" "$OUT"

  # Less than a pipe buffer each way: the C wsh writes stdin with blocking
  # writes and can deadlock against a child whose stdout is full.
  head -c 50000 /dev/urandom >"$WORK/rand"
  wsh_run "$wsh" "$sock" "$WORK/rand" -- cat
  check_files "$t stdin copied through, EOF ends cat" "$WORK/rand" "$OUT"
  check "$t cat exits 0 on stdin EOF" 0 "$RC"
  head -c 1000000 /dev/urandom >"$WORK/rand"
  wsh_run "$wsh" "$sock" "$WORK/rand" -- wc -c
  check "$t 1000000 bytes of stdin counted" 1000000 "$(out | tr -d ' ')"

  printf 'echo hi from $0; exit 5\n' >"$WORK/script"
  wsh_run "$wsh" "$sock" "$WORK/script" --
  check "$t no argv: login shell reads stdin" "hi from /bin/sh" "$(out)"
  check "$t no argv: shell's exit code" 5 "$RC"

  wsh_run "$wsh" "$sock" $NUL -- --user vcap sh -c 'id -u; id -g; id -un; pwd'
  check "$t --user vcap: uid gid name home" "10000 10000 vcap /home/vcap" "$(out | tr '\n' ' ' | sed 's/ $//')"
  wsh_run "$wsh" "$sock" $NUL -- --user nosuchuser true
  check "$t unknown user -> 255" 255 "$RC"

  wsh_run "$wsh" "$sock" $NUL LANG=en_US.UTF-8 -- env
  check "$t env (root, LANG set)" \
    "HOME=/root LANG=en_US.UTF-8 PATH=/sbin:/bin:/usr/sbin:/usr/bin USER=root" "$(sorted_env)"
  wsh_run "$wsh" "$sock" $NUL LANG=C.UTF-8 -- --user vcap env
  check "$t env (vcap, LANG set)" \
    "HOME=/home/vcap LANG=C.UTF-8 PATH=/bin:/usr/bin USER=vcap" "$(sorted_env)"
  wsh_run "$wsh" "$sock" $NUL -- env
  local e
  e=$(sorted_env)
  # The reference sets an empty LANG; leaving it out is allowed.
  case "$e" in
    "HOME=/root LANG= PATH=/sbin:/bin:/usr/sbin:/usr/bin USER=root" | \
      "HOME=/root PATH=/sbin:/bin:/usr/sbin:/usr/bin USER=root")
      pass "$t env (root, no LANG)" ;;
    *) fail "$t env (root, no LANG): got $(printf %q "$e")" ;;
  esac

  wsh_run "$wsh" "$sock" $NUL -- sh -c 'ulimit -n; ulimit -c; ulimit -u'
  check "$t default rlimits (nofile core nproc)" "1024 0 1024" "$(out | tr '\n' ' ' | sed 's/ $//')"
  wsh_run "$wsh" "$sock" $NUL RLIMIT_NOFILE=256 -- sh -c 'ulimit -n'
  check "$t RLIMIT_NOFILE=256 -> ulimit -n" 256 "$(out)"
  wsh_run "$wsh" "$sock" $NUL 'RLIMIT_NOFILE=128 512' -- sh -c 'ulimit -Sn; ulimit -Hn'
  check "$t RLIMIT_NOFILE='128 512' -> soft hard" "128 512" "$(out | tr '\n' ' ' | sed 's/ $//')"

  wsh_run "$wsh" "$sock" $NUL -- ls /proc/self/fd
  check "$t child inherits only fds 0 1 2 (3 is ls's own)" "0 1 2 3" "$(out | tr '\n' ' ' | sed 's/ $//')"

  wsh_run "$wsh" "$sock" $NUL -- sh -c 'test -t 0 || test -t 1 || test -t 2 || echo notty'
  check "$t no tty: pipes" notty "$(out)"

  # tty mode, driven through a pty from script(1).
  local cmd
  cmd="$(printf %q "$wsh") --socket $(printf %q "$sock") sh -c 'test -t 0 && test -t 1 && test -t 2 && echo TTY-\$(tty | cut -c1-9); exit 7'"
  timeout 30 script -qec "$cmd" /dev/null </dev/null >"$WORK/tty.out" 2>&1
  RC=$?
  check "$t tty: child on a pty slave" "TTY-/dev/pts/" "$(tr -d '\r' <"$WORK/tty.out" | grep -o 'TTY-/dev/pts/' | head -n1)"
  check "$t tty: exit code" 7 "$RC"
  cmd="$(printf %q "$wsh") --socket $(printf %q "$sock") sh -c 'kill -9 \$\$'"
  timeout 30 script -qec "$cmd" /dev/null </dev/null >"$WORK/tty.out" 2>&1
  check "$t tty: killed by a signal -> 255" 255 "$?"

  # A line typed on the terminal reaches the child, and its answer comes
  # back while nothing more is typed (wsh must not sit in a read of its
  # terminal).
  python3 - "$wsh" "$sock" >"$WORK/tty.out" 2>&1 <<'PYEOF'
import os, select, subprocess, sys, time
wsh, sock = sys.argv[1], sys.argv[2]
master, slave = os.openpty()
p = subprocess.Popen([wsh, "--socket", sock, "sh", "-c", "read x; echo TTY-$x; exit 7"],
                     stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
os.write(master, b"hello\n")
seen = b""
deadline = time.time() + 10
while b"TTY-hello" not in seen and time.time() < deadline:
    r, _, _ = select.select([master], [], [], 0.1)
    if r:
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
try:
    rc = p.wait(timeout=max(1, deadline - time.time()))
except subprocess.TimeoutExpired:
    p.kill()
    rc = "timeout"
print("answer" if b"TTY-hello" in seen else "no answer: %r" % seen, rc)
PYEOF
  check "$t tty: typed line answered, exit code" "answer 7" "$(cat "$WORK/tty.out")"
}

# What a wsh sends: a fake daemon records the request bytes. Every byte must
# match between the C and the Rust client given the same arguments and
# environment. capture_request WSH OUTFILE [VAR=VALUE...] -- WSH-ARGS...
# (sets RC to the client's exit code).
capture_request() {
  local wsh=$1 outfile=$2
  shift 2
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local sock=$WORK/fake.sock
  rm -f "$sock" "$outfile"
  python3 - "$sock" "$outfile" <<'EOF' &
import socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
s.settimeout(10)
open(path + ".ready", "w").close()
try:
    c, _ = s.accept()
except socket.timeout:
    sys.exit(0)  # the client gave up before connecting
c.settimeout(10)
data = b""
while len(data) < 9656:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
open(out, "wb").write(data)
c.close()
EOF
  local py=$!
  wait_for 10 test -e "$sock.ready"
  rm -f "$sock.ready"
  env -i PATH=/usr/bin:/bin "${envs[@]}" timeout 30 "$wsh" --socket "$sock" "$@" </dev/null >/dev/null 2>&1
  RC=$?
  wait "$py"
  [ -e "$outfile" ] || : >"$outfile"
}

# compare_request NAME [VAR=VALUE...] -- WSH-ARGS...
compare_request() {
  local name=$1 rc_c
  shift
  capture_request "$WORK/bin/c/wsh" "$WORK/req.c" "$@"
  rc_c=$RC
  capture_request "$WORK/bin/rust/wsh" "$WORK/req.rust" "$@"
  check_files "request ($name): Rust wsh's bytes == C wsh's" "$WORK/req.c" "$WORK/req.rust"
  check "request ($name): same client exit code as C ($rc_c)" "$rc_c" "$RC"
}

request_bytes() {
  local long
  long=$(head -c 9000 /dev/zero | tr '\0' a)
  compare_request "empty environment" -- echo hi
  compare_request "no argv" LANG=C --
  compare_request "--rsh -4 -l vcap -t 5 host" -- --rsh -4 -l vcap -t 5 somehost rsync --server .
  compare_request "argv over 8192 bytes" -- echo "$long"
  compare_request "unparsable rlimit" RLIMIT_NOFILE=lots -- true
  # Last, so that req.c is this request for raw_response below.
  compare_request "LANG, rlimits, --user" LANG=en_US.UTF-8 RLIMIT_NOFILE=256 'RLIMIT_CPU=10 20' RLIMIT_CORE=0 \
    -- --user vcap echo "hello  world" x
  check "request: C wsh sends 9656 bytes" 9656 "$(stat -c %s "$WORK/req.c")"
}

# What a wshd answers, seen by a raw client replaying the C wsh's request
# bytes: the 4-byte response, the number of descriptors, and the exact bytes
# of the exit pipe (native int, or nothing when the child was killed).
raw_response() {
  local label=$1 sock=$2 reqfile=$3
  python3 - "$sock" "$reqfile" >"$WORK/raw.out" 2>&1 <<'EOF'
import os, socket, struct, sys
sock, reqfile = sys.argv[1], sys.argv[2]
base = bytearray(open(reqfile, "rb").read())
assert len(base) == 9656

def request(argv):
    req = bytearray(base)
    buf = b"".join(a.encode() + b"\0" for a in argv)
    struct.pack_into("i", req, 8, len(argv))
    req[12:12 + 8192] = buf + b"\0" * (8192 - len(buf))
    req[8600:8632] = b"\0" * 32  # root
    return bytes(req)

for argv in (["sh", "-c", "echo hi; exit 42"], ["sh", "-c", "kill -9 $$"]):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    s.sendall(request(argv))
    msg, fds, flags, addr = socket.recv_fds(s, 64, 16)
    print("response", msg.hex(), "fds", len(fds))
    files = [os.fdopen(fd, "wb" if i == 0 else "rb", buffering=0) for i, fd in enumerate(fds)]
    if len(files) == 4:
        files[0].close()
        print("stdout", files[1].read().hex())
        print("exitpipe", files[3].read().hex())
    s.close()
EOF
  check "$label raw reply (exit 42, then killed)" \
    "response 01000000 fds 4|stdout 68690a|exitpipe 2a000000|response 01000000 fds 4|stdout |exitpipe " \
    "$(tr '\n' '|' <"$WORK/raw.out" | sed 's/|$//')"
}

wsh_suite() {
  local c=$WORK/bin/c rust=$WORK/bin/rust
  local up_c=0 up_rust=0
  if start_container "$WORK/ct-c" "$c/wshd" c; then
    pass "C wshd comes up"
    up_c=1
  else
    fail "C wshd comes up (see its log above)"
  fi
  if start_container "$WORK/ct-rust" "$rust/wshd" rust; then
    pass "Rust wshd comes up"
    up_rust=1
  else
    fail "Rust wshd comes up (see its log above)"
  fi

  request_bytes

  if [ $up_c = 1 ]; then
    wsh_pairing "C wsh -> C wshd (baseline)" "$c/wsh" "$WORK/ct-c/run/wshd.sock"
    wsh_pairing "Rust wsh -> C wshd" "$rust/wsh" "$WORK/ct-c/run/wshd.sock"
    raw_response "[C wshd]" "$WORK/ct-c/run/wshd.sock" "$WORK/req.c"
  fi
  if [ $up_rust = 1 ]; then
    wsh_pairing "C wsh -> Rust wshd" "$c/wsh" "$WORK/ct-rust/run/wshd.sock"
    wsh_pairing "Rust wsh -> Rust wshd (baseline)" "$rust/wsh" "$WORK/ct-rust/run/wshd.sock"
    raw_response "[Rust wshd]" "$WORK/ct-rust/run/wshd.sock" "$WORK/req.c"
  fi
  kill_container "$WORK/ct-c"
  kill_container "$WORK/ct-rust"
}

# --------------------------------------------------------------------------
# iomux-spawn <-> iomux-link
# --------------------------------------------------------------------------

# spawn_start SPAWN DIR JOB...: starts SPAWN in the background on DIR and
# waits for its child_pid line and its three sockets. Sets SPAWN_PID.
spawn_start() {
  local spawn=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  "$spawn" "$dir" "$@" </dev/null >"$dir.spawn.out" 2>"$dir.spawn.err" &
  SPAWN_PID=$!
  wait_for 10 grep -q '^child_pid=' "$dir.spawn.out" &&
    wait_for 10 test -S "$dir/stdout.sock" -a -S "$dir/stderr.sock" -a -S "$dir/status.sock"
}

# spawn_finish LABEL DIR: the spawn exits 0, said child_pid= and child
# active, and removed its sockets.
spawn_finish() {
  local t=$1 dir=$2 rc
  if wait_for 20 proc_gone "$SPAWN_PID"; then
    wait "$SPAWN_PID"
    rc=$?
  else
    rc=timeout
    kill -KILL "$SPAWN_PID" 2>/dev/null
  fi
  check "$t spawn exits 0" 0 "$rc"
  check "$t spawn's stdout lines" "child_pid=N|child active|" \
    "$(sed 's/^child_pid=[0-9][0-9]*$/child_pid=N/' "$dir.spawn.out" | tr '\n' '|')"
  check "$t spawn removed its sockets" "" "$(cd "$dir" && ls -- *.sock 2>/dev/null)"
}

sockets_connected() { [ "$(ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'socket:')" -ge 3 ]; }

be32() { printf '%08x' "$1"; }

iomux_pairing() {
  local label=$1 link=$2 spawn=$3
  local t="[$label]" d=$WORK/io rc

  # 1. A job with known output and exit code 3.
  rm -rf "$d" && mkdir -p "$d"
  if ! spawn_start "$spawn" "$d/j1" sh -c 'echo out1; echo err1 >&2; echo out2; exit 3'; then
    fail "$t spawn comes up: $(cat "$d/j1.spawn.err")"
    return
  fi
  timeout 30 "$link" "$d/j1" >"$d/l.out" 2>"$d/l.err"
  check "$t link exits with the job's code" 3 "$?"
  check "$t link's stdout" "out1|out2|" "$(tr '\n' '|' <"$d/l.out")"
  check "$t link's stderr" "err1|" "$(tr '\n' '|' <"$d/l.err")"
  spawn_finish "$t" "$d/j1"

  # 2. A job killed by a signal: link exits 255.
  if spawn_start "$spawn" "$d/j2" sh -c 'echo x; kill -9 $$'; then
    timeout 30 "$link" "$d/j2" >"$d/l.out" 2>"$d/l.err"
    check "$t job killed by a signal -> link 255" 255 "$?"
    spawn_finish "$t" "$d/j2"
  else
    fail "$t spawn comes up (j2)"
  fi

  # 3. Cursor file round trip: the first link is stopped with SIGTERM after
  # the first half, the second continues from the saved positions.
  cat >"$d/job3.sh" <<EOF
i=0; while [ \$i -lt 10 ]; do echo a\$i; echo ea\$i >&2; i=\$((i+1)); done
while [ ! -e "$d/go" ]; do sleep 0.05; done
i=0; while [ \$i -lt 10 ]; do echo b\$i; echo eb\$i >&2; i=\$((i+1)); done
exit 5
EOF
  local first='' second='' efirst='' esecond='' i
  for i in 0 1 2 3 4 5 6 7 8 9; do
    first+="a$i|"; efirst+="ea$i|"; second+="b$i|"; esecond+="eb$i|"
  done
  if ! spawn_start "$spawn" "$d/j3" sh "$d/job3.sh"; then
    fail "$t spawn comes up (j3)"
    return
  fi
  "$link" -w "$d/cursors" "$d/j3" >"$d/l1.out" 2>"$d/l1.err" &
  local l1=$!
  if wait_for 20 grep -q '^a9$' "$d/l1.out" && wait_for 20 grep -q '^ea9$' "$d/l1.err"; then
    kill -TERM "$l1"
    wait "$l1"
    check "$t link exits 0 on SIGTERM" 0 "$?"
    check "$t first link's stdout" "$first" "$(tr '\n' '|' <"$d/l1.out")"
    check "$t cursors file = BE stdout pos, BE stderr pos" \
      "$(be32 "$(stat -c %s "$d/l1.out")")$(be32 "$(stat -c %s "$d/l1.err")")" \
      "$(od -An -tx1 -v "$d/cursors" 2>/dev/null | tr -d ' \n')"
    "$link" -w "$d/cursors" "$d/j3" >"$d/l2.out" 2>"$d/l2.err" &
    local l2=$!
    wait_for 20 sockets_connected "$l2"
    touch "$d/go"
    if wait_for 30 proc_gone "$l2"; then
      wait "$l2"
      rc=$?
    else
      rc=timeout
      kill -KILL "$l2"
    fi
    check "$t re-linked: exit code 5" 5 "$rc"
    check "$t re-linked: stdout continues exactly" "$second" "$(tr '\n' '|' <"$d/l2.out")"
    check "$t re-linked: stderr continues exactly" "$esecond" "$(tr '\n' '|' <"$d/l2.err")"
    check "$t cursors file at the end" \
      "$(be32 $((${#first} + ${#second})))$(be32 $((${#efirst} + ${#esecond})))" \
      "$(od -An -tx1 -v "$d/cursors" 2>/dev/null | tr -d ' \n')"
  else
    fail "$t first link never printed the first half: $(head -c 200 "$d/l1.err")"
    kill -KILL "$l1" 2>/dev/null
    touch "$d/go"
  fi
  spawn_finish "$t" "$d/j3"
  rm -rf "$d"
}

# The bytes a raw client gets from a spawn: an early client (connected
# before the job starts) and a late one (connected after 100000 bytes, so
# the ring buffer has wrapped). Written to OUTDIR for comparison.
raw_spawn() {
  local spawn=$1 outdir=$2 d=$WORK/raw
  rm -rf "$d" "$outdir" && mkdir -p "$d" "$outdir"
  # (Not `yes | head` in the job: the C spawn starts it with SIGPIPE
  # ignored, so yes would complain on stderr.)
  yes 0123456789abcdef | head -c 100000 >"$d/data"
  spawn_start "$spawn" "$d/j" sh -c "cat '$d/data'; echo E >&2; while [ ! -e '$d/go' ]; do sleep 0.05; done; printf tail; exit 3" ||
    return 1
  python3 - "$d/j" "$d/go" "$outdir" <<'EOF'
import os, socket, sys, threading, time
jobdir, go, out = sys.argv[1], sys.argv[2], sys.argv[3]
data = {}

def conn(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(os.path.join(jobdir, name + ".sock"))
    return s

def reader(key, s):
    data[key] = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        data[key] += b

def start(key, name):
    t = threading.Thread(target=reader, args=(key, conn(name)))
    t.start()
    return t

threads = [start("early.stdout", "stdout"), start("early.stderr", "stderr"),
           start("early.status", "status")]
deadline = time.time() + 60
while len(data.get("early.stdout", b"")) < 4 + 100000 and time.time() < deadline:
    time.sleep(0.02)
late = [start("late.stdout", "stdout"), start("late.stderr", "stderr")]
# Release the tail only once the late client has its catch-up, so its
# offset does not depend on timing.
while len(data.get("late.stdout", b"")) < 4 + 65535 and time.time() < deadline:
    time.sleep(0.02)
open(go, "w").close()
for t in threads + late:
    t.join()
for k, v in data.items():
    open(os.path.join(out, k), "wb").write(v)
EOF
  wait_for 20 proc_gone "$SPAWN_PID"
  wait "$SPAWN_PID" 2>/dev/null
}

# raw_status SPAWN JOB...: prints the hex of what a raw client reads from
# status.sock (connected with stdout and stderr before the job starts).
raw_status() {
  local spawn=$1 d=$WORK/rawst
  shift
  rm -rf "$d" && mkdir -p "$d"
  spawn_start "$spawn" "$d/j" "$@" || { echo "no spawn"; return; }
  python3 - "$d/j" <<'EOF'
import os, socket, sys
socks = []
for name in ("stdout", "stderr", "status"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(sys.argv[1], name + ".sock"))
    socks.append(s)
got = {}
for name, s in zip(("stdout", "stderr", "status"), socks):
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    got[name] = data
print(got["status"].hex())
EOF
  wait_for 20 proc_gone "$SPAWN_PID"
  wait "$SPAWN_PID" 2>/dev/null
}

framing() {
  local c=$WORK/bin/c rust=$WORK/bin/rust exp=$WORK/expect k
  local job st_c
  for job in 'exit 0' 'exit 255' 'kill -9 $$' 'kill -15 $$'; do
    st_c=$(raw_status "$c/iomux-spawn" sh -c "$job")
    check "status bytes for '$job': Rust spawn == C spawn ($st_c)" "$st_c" \
      "$(raw_status "$rust/iomux-spawn" sh -c "$job")"
  done
  if ! raw_spawn "$c/iomux-spawn" "$WORK/frames.c"; then
    fail "framing: C spawn comes up"
    return
  fi
  if ! raw_spawn "$rust/iomux-spawn" "$WORK/frames.rust"; then
    fail "framing: Rust spawn comes up"
    return
  fi
  # Independently of the C spawn, what the contract says they must be.
  mkdir -p "$exp"
  { printf '\0\0\0\0'; yes 0123456789abcdef | head -c 100000; printf tail; } >"$exp/early.stdout"
  printf '\0\0\0\0E\n' >"$exp/early.stderr"
  printf '\0\0\3\0' >"$exp/early.status"
  # 100000 - 65535 = 34465 = 0x86a1
  { printf '\0\0\206\241'; yes 0123456789abcdef | head -c 100000 | tail -c 65535; printf tail; } >"$exp/late.stdout"
  printf '\0\0\0\0E\n' >"$exp/late.stderr"
  for k in early.stdout early.stderr early.status late.stdout late.stderr; do
    check_files "framing: C spawn $k matches the contract" "$exp/$k" "$WORK/frames.c/$k"
    check_files "framing: Rust spawn $k == C spawn's" "$WORK/frames.c/$k" "$WORK/frames.rust/$k"
  done
}

iomux_cli() {
  local c=$WORK/bin/c rust=$WORK/bin/rust rc_c rc_r
  "$c/iomux-link" "$WORK/nonexistent" >/dev/null 2>&1
  rc_c=$?
  "$rust/iomux-link" "$WORK/nonexistent" >/dev/null 2>&1
  rc_r=$?
  check "link on a missing socket dir: same exit code as C ($rc_c)" "$rc_c" "$rc_r"
  "$c/iomux-spawn" "$WORK" >/dev/null 2>&1
  rc_c=$?
  "$rust/iomux-spawn" "$WORK" >/dev/null 2>&1
  rc_r=$?
  check "spawn with one argument: same exit code as C ($rc_c)" "$rc_c" "$rc_r"
  printf 'abc' >"$WORK/short-cursors"
  mkdir -p "$WORK/emptydir"
  "$c/iomux-link" -w "$WORK/short-cursors" "$WORK/emptydir" >/dev/null 2>&1
  rc_c=$?
  "$rust/iomux-link" -w "$WORK/short-cursors" "$WORK/emptydir" >/dev/null 2>&1
  rc_r=$?
  check "link with a short cursors file: same exit code as C ($rc_c)" "$rc_c" "$rc_r"
}

iomux_suite() {
  local c=$WORK/bin/c rust=$WORK/bin/rust
  iomux_pairing "C link -> C spawn (baseline)" "$c/iomux-link" "$c/iomux-spawn"
  iomux_pairing "C link -> Rust spawn" "$c/iomux-link" "$rust/iomux-spawn"
  iomux_pairing "Rust link -> C spawn" "$rust/iomux-link" "$c/iomux-spawn"
  iomux_pairing "Rust link -> Rust spawn (baseline)" "$rust/iomux-link" "$rust/iomux-spawn"
  framing
  iomux_cli
}

SUITES=${COMPAT_SUITES:-"wsh iomux"}
for s in $SUITES; do
  case "$s" in
    wsh) wsh_suite ;;
    iomux) iomux_suite ;;
    *) die "unknown suite $s (COMPAT_SUITES: wsh iomux)" ;;
  esac
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
