#!/bin/sh
# The integration tests run inside the cgroup v2 VM (POSIX sh; busybox plus
# the host tools run.sh put in the image). Started by tests/vm/init.sh.
#
#   tests.sh              run every test, report, print VMTEST-DONE
#   tests.sh --one NAME   run test NAME alone (exit status = result)
#
# Each test runs as its own process under a hard per-test timeout; its
# output goes to the console, and one line `VMTEST <name> PASS|FAIL <detail>`
# goes to the results channel ($VMTEST_RESULTS) and the console. Tests that
# share a container run in order and find it through $STATE.
#
# Environment (from the kernel command line, see init.sh): VMTEST_RESULTS,
# VMTEST_ONLY (comma separated names), VMTEST_INJECT (fail: add a probe that
# fails; hang: never finish, for the harness's self-test),
# VMTEST_TEST_TIMEOUT (seconds per test).
#
# shellcheck disable=SC2016 # the single-quoted scripts run in the container

BIN=${VMTEST_BIN:-/opt/warden/bin}
ROOTFS=${VMTEST_ROOTFS:-/opt/warden/rootfs}
STATE=${VMTEST_STATE:-/run/vmtest}
CG=/sys/fs/cgroup
export WARDEN_DEPOT=/var/lib/warden
export WARDEN_BIN_DIR="$BIN"
export WARDEN_SCRIPTS_DIR=/opt/warden/setup-scripts
export WARDEN_ROOTFS="$ROOTFS"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

TESTS="cgroup2-only
wshd-start wshd-exit-codes wshd-stdio wshd-users wshd-tty wshd-fds wshd-teardown
wardenctl-setup wardenctl-create wardenctl-run wardenctl-spawn-link pids-max
wardenctl-stop wardenctl-destroy wardenctl-two-containers
device-whitelist memory-oom oom-tool cpu-weight disk-loop disk-quota repquota-tool net-out net-in
confinement confinement-nested wardend observe clone-into-cgroup"

fail() {
  echo "$*" >&2
  exit 1
}

# expect WHAT GOT WANT
expect() {
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# The words of $1 on one line.
words() {
  printf '%s' "$1" | tr -s '\n\t ' '   ' | sed 's/^ //; s/ $//'
}

# Output and exit status of a command, as "OUT" and $rc.
capture() {
  out=$("$@" 2> "$STATE/stderr")
  rc=$?
  err=$(cat "$STATE/stderr")
}

# ------------------------------------------------------------ the host

t_cgroup2_only() {
  mounts=$(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 " " $3 }' /proc/self/mounts)
  expect "cgroup mounts" "$mounts" "/sys/fs/cgroup cgroup2"
  for c in cpu memory pids io; do
    grep -qw "$c" "$CG/cgroup.subtree_control" || fail "controller $c is not enabled in $CG"
  done
  # cgroup_no_v1=all: no v1 hierarchy can be made, as on a v2-only host.
  mkdir -p /tmp/v1
  if mount -t cgroup -o memory cgroup /tmp/v1 2> /dev/null; then
    umount /tmp/v1
    fail "a cgroup v1 memory hierarchy could still be mounted"
  fi
  grep -q overlay /proc/filesystems || fail "no overlay filesystem"
  echo "cgroup2 only, controllers: $(cat "$CG/cgroup.subtree_control")"
}

t_injected_failing_probe() {
  expect "injected probe (meant to fail)" "1" "2"
}

# ------------------------------------------------- wshd/wsh, hand-made

# A container built by hand as tests/src/container.rs does: minimal hooks,
# the overlay mounted in wshd's own mount namespace, no cgroups.
W=/tmp/wshd-vm

wsh() {
  "$BIN/wsh" --socket "$W/run/wshd.sock" "$@"
}

need_wshd() {
  [ -S "$W/run/wshd.sock" ] || fail "no hand-made container (wshd-start failed)"
}

t_wshd_start() {
  rm -rf "$W"
  mkdir -p "$W/run" "$W/lib" "$W/mnt" "$W/upper" "$W/work"
  cat > "$W/lib/hook-parent-before-clone.sh" << EOF
#!/bin/sh
set -e
cd "\$(dirname "\$0")/.."
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=\$PWD/upper,workdir=\$PWD/work" mnt
cp "$BIN/wshd" mnt/sbin/wshd
chmod 0755 mnt/sbin/wshd
rm -rf mnt/dev
mkdir -p mnt/dev/pts mnt/dev/shm mnt/proc
mknod -m 0666 mnt/dev/null c 1 3
mknod -m 0666 mnt/dev/zero c 1 5
mknod -m 0666 mnt/dev/urandom c 1 9
mknod -m 0666 mnt/dev/tty c 5 0
ln -s pts/ptmx mnt/dev/ptmx
EOF
  cat > "$W/lib/hook-parent-after-clone.sh" << 'EOF'
#!/bin/sh
set -e
cd "$(dirname "$0")/.."
echo "$PID" > run/wshd.pid
EOF
  printf '#!/bin/sh\nexit 0\n' > "$W/lib/hook-child-before-pivot.sh"
  cat > "$W/lib/hook-child-after-pivot.sh" << 'EOF'
#!/bin/sh
set -e
mount -t proc proc /proc
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname vmbox
EOF
  chmod 0755 "$W"/lib/*.sh
  # A --cgroup that does not exist: wshd clones without it (its hooks would
  # move the process), as a wshd without the option does.
  "$BIN/wshd" --run "$W/run" --lib "$W/lib" --root "$W/mnt" --title "wshd: vm" \
    --cgroup "$CG/no-such-group" \
    < /dev/null > "$W/run/wshd.out.log" 2> "$W/run/wshd.err.log" ||
    fail "wshd exited with $?: $(tail -n 3 "$W/run/wshd.err.log")"
  pid=$(cat "$W/run/wshd.pid") || fail "no run/wshd.pid"
  readlink "/proc/$pid/ns/pid" > "$W/pidns" || fail "container init $pid is not running"
  [ -S "$W/run/wshd.sock" ] || fail "no run/wshd.sock"
  capture wsh hostname
  expect "hostname" "$out" "vmbox"
  capture wsh cat /proc/1/cmdline
  case "$out" in *wshd*) ;; *) fail "pid 1 in the container is not wshd: $out" ;; esac
  # The host's mount table never sees the overlay.
  ! grep -q "$W/mnt" /proc/self/mountinfo || fail "the container's overlay is mounted on the host"
}

t_wshd_exit_codes() {
  need_wshd
  capture wsh true
  expect "true" "$rc" 0
  capture wsh false
  expect "false" "$rc" 1
  capture wsh sh -c 'exit 7'
  expect "exit 7" "$rc" 7
  capture wsh sh -c 'kill -KILL $$'
  expect "killed by SIGKILL (v1: 255)" "$rc" 255
  capture wsh /no/such/program
  expect "exec failure" "$rc" 255
  # A version-2 request: the pidfd path, death by a signal as 128+N, and
  # the environment and directory it carries.
  capture wsh --v2 sh -c 'kill -TERM $$'
  expect "killed by SIGTERM (v2: 128+15)" "$rc" 143
  capture wsh --v2 sh -c 'exit 6'
  expect "v2 exit 6" "$rc" 6
  capture wsh --env GREETING=hello --dir /tmp sh -c 'echo "$GREETING $(pwd)"'
  expect "v2 --env and --dir" "$out" "hello /tmp"
}

t_wshd_stdio() {
  need_wshd
  out=$(printf 'line one\nline two\n' | wsh cat)
  expect "stdin to stdout" "$out" "line one
line two"
  wsh sh -c 'echo to-out; echo to-err >&2; exit 3' > "$STATE/o" 2> "$STATE/e"
  expect "exit" "$?" 3
  expect "stdout" "$(cat "$STATE/o")" "to-out"
  expect "stderr" "$(cat "$STATE/e")" "to-err"
  # 1 MiB through the pipes, both ways.
  head -c 1048576 /dev/urandom > "$STATE/big"
  wsh cat < "$STATE/big" > "$STATE/big.out"
  cmp -s "$STATE/big" "$STATE/big.out" || fail "1 MiB through wsh cat came back different"
}

t_wshd_users() {
  need_wshd
  capture wsh id -u
  expect "root uid" "$out" 0
  capture wsh --user vcap id -u
  expect "vcap uid" "$out" 10000
  capture wsh --user vcap id -g
  expect "vcap gid" "$out" 10000
  capture wsh --user vcap sh -c 'echo "$HOME:$USER:$(pwd):$PATH"'
  expect "vcap environment" "$out" "/home/vcap:vcap:/home/vcap:/bin:/usr/bin"
  capture wsh sh -c 'echo "$HOME:$USER:$PATH"'
  expect "root environment" "$out" "/root:root:/sbin:/bin:/usr/sbin:/usr/bin"
  capture wsh --user nosuchuser true
  expect "unknown user" "$rc" 255
}

# script(1) gives wsh a terminal. Its stdin is a FIFO held open for read and
# write, never at EOF: at EOF script writes an end-of-file character to the
# terminal, and wsh (rightly) forwards it, which would show up as a stray ^@.
in_tty() {
  [ -p "$STATE/tty-in" ] || mkfifo "$STATE/tty-in"
  script -qec "$1" /dev/null 8<> "$STATE/tty-in" <&8 8<&- | tr -d '\r'
}

t_wshd_tty() {
  need_wshd
  capture wsh tty
  expect "tty without a terminal" "$out" "not a tty"
  out=$(in_tty "$BIN/wsh --socket $W/run/wshd.sock tty")
  case "$out" in /dev/pts/*) ;; *) fail "tty under a terminal: got '$out'" ;; esac
  rc=$(in_tty "$BIN/wsh --socket $W/run/wshd.sock sh -c 'exit 4'; echo \$?")
  expect "exit code through the tty" "$rc" 4
  out=$(in_tty "$BIN/wsh --socket $W/run/wshd.sock --user vcap id -u")
  expect "vcap under a tty" "$out" 10000
}

t_wshd_fds() {
  need_wshd
  # `; :` keeps the shell alive, so $$ is the shell and not ls.
  capture wsh sh -c 'ls /proc/$$/fd; :'
  expect "descriptors of a pipe-mode process" "$(words "$out")" "0 1 2"
  # Open descriptors of the caller never reach the container.
  exec 7< /etc/passwd
  capture wsh sh -c 'ls /proc/$$/fd; :'
  exec 7<&-
  expect "descriptors with fd 7 open in the caller" "$(words "$out")" "0 1 2"
  out=$(in_tty "$BIN/wsh --socket $W/run/wshd.sock sh -c 'ls /proc/\$\$/fd; :'")
  expect "descriptors of a tty-mode process" "$(words "$out")" "0 1 2"
}

t_wshd_teardown() {
  need_wshd
  pid=$(cat "$W/run/wshd.pid")
  ns=$(cat "$W/pidns")
  kill -KILL "$pid"
  i=0
  while [ -d "/proc/$pid" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  left=""
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/pid" 2> /dev/null)" = "$ns" ] && left="$left ${p#/proc/}"
  done
  [ -z "$left" ] || fail "processes left in the container:$left"
  ! grep -q "$W" /proc/self/mountinfo || fail "mounts left: $(grep "$W" /proc/self/mountinfo)"
  rm -rf "$W" || fail "cannot remove $W"
}

# --------------------------------------- wardenctl and the setup scripts

ctl() {
  "$BIN/wardenctl" "$@"
}

# The instance id of handle vm1, saved by wardenctl-create.
need_vm1() {
  [ -s "$STATE/vm1.id" ] || fail "no container vm1 (wardenctl-create failed)"
  id=$(cat "$STATE/vm1.id")
  cg=$CG/instance-$id
  path=$WARDEN_DEPOT/vm1
  wshd_pid=$(cat "$path/run/wshd.pid" 2> /dev/null)
}

json_str() { # KEY JSON
  printf '%s' "$2" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

json_num() { # KEY JSON
  printf '%s' "$2" | sed -n "s/.*\"$1\":\\([0-9][0-9]*\\).*/\\1/p"
}

# Processes in the container's cgroup other than wshd.
others() {
  for p in $(cat "$cg/cgroup.procs"); do
    [ "$p" = "$wshd_pid" ] || echo "$p"
  done
}

t_wardenctl_setup() {
  capture ctl setup
  expect "wardenctl setup exit ($err)" "$rc" 0
  for c in cpu memory pids io; do
    grep -qw "$c" "$CG/cgroup.subtree_control" || fail "after setup, controller $c is not enabled in $CG"
  done
  iptables -w -S FORWARD | grep -q warden-forward || fail "no warden-forward hook in FORWARD: $(iptables -w -S FORWARD 2>&1)"
}

t_wardenctl_create() {
  capture ctl create --handle vm1
  expect "wardenctl create exit ($err)" "$rc" 0
  expect "create prints the handle" "$out" vm1
  capture ctl info vm1 --json
  expect "wardenctl info exit ($err)" "$rc" 0
  echo "info: $out"
  id=$(json_str id "$out")
  [ -n "$id" ] || fail "no id in info: $out"
  echo "$id" > "$STATE/vm1.id"
  need_vm1
  { [ -n "$wshd_pid" ] && [ -d "/proc/$wshd_pid" ]; } || fail "wshd of vm1 is not running (pid '$wshd_pid')"
  [ -d "$cg" ] || fail "no cgroup $cg; cgroups: $(ls -d $CG/*/)"
  for c in cpu memory pids io; do
    grep -qw "$c" "$cg/cgroup.controllers" ||
      fail "controller $c missing in $cg/cgroup.controllers ($(cat "$cg/cgroup.controllers"))"
  done
  grep -qx "$wshd_pid" "$cg/cgroup.procs" || fail "wshd $wshd_pid is not in $cg/cgroup.procs"
  expect "wshd's cgroup" "$(cat "/proc/$wshd_pid/cgroup")" "0::/instance-$id"
  [ -e "/sys/class/net/w-$id-0" ] || fail "no host veth w-$id-0"
  # Both host-side devices in the container's device group (its host
  # address as a number, top bit cleared), which destroy.sh deletes in one
  # request.
  host_ip=$(json_str host_ip "$out")
  [ -n "$host_ip" ] || fail "no host_ip in info: $out"
  old_ifs=$IFS
  IFS=.
  # shellcheck disable=SC2086
  set -- $host_ip
  IFS=$old_ifs
  group=$(((($1 << 24) | ($2 << 16) | ($3 << 8) | $4) & 2147483647))
  for dev in "w-$id-0" "w-$id-2"; do
    expect "$dev's device group" "$(cat "/sys/class/net/$dev/netdev_group")" "$group"
  done
}

t_wardenctl_run() {
  need_vm1
  capture ctl run vm1 -- echo hello
  expect "run echo ($err)" "$rc" 0
  expect "run echo output" "$out" hello
  capture ctl run vm1 -- sh -c 'exit 3'
  expect "run exit code" "$rc" 3
  capture ctl run vm1 -- id -u
  expect "run as vcap" "$out" 10000
  capture ctl run vm1 --privileged -- id -u
  expect "run privileged" "$out" 0
  # The container's own cgroup namespace: its group is its root.
  capture ctl run vm1 -- cat /proc/self/cgroup
  expect "a job's cgroup as seen inside" "$out" "0::/"
  expect "the job's cgroup seen from the host" \
    "$(grep -l "^0::/instance-$id\$" /proc/[0-9]*/cgroup 2> /dev/null | head -n 1 | grep -c .)" 1
  capture ctl run vm1 -- hostname
  expect "hostname" "$out" "$id"
}

t_wardenctl_spawn_link() {
  need_vm1
  capture ctl spawn vm1 -- sh -c 'echo spawned; echo to-err >&2; exit 5'
  expect "spawn ($err)" "$rc" 0
  job=$out
  case "$job" in '' | *[!0-9]*) fail "spawn printed no job id: '$job'" ;; esac
  capture ctl link vm1 "$job"
  expect "link exit code" "$rc" 5
  expect "link stdout" "$out" spawned
  expect "link stderr" "$err" to-err
  # A running job is in the container's cgroup.
  capture ctl spawn vm1 -- sleep 300
  expect "spawn sleep ($err)" "$rc" 0
  echo "$out" > "$STATE/sleep.job"
  i=0
  found=""
  while [ -z "$found" ] && [ $i -lt 50 ]; do
    for p in $(others); do
      [ "$(cat "/proc/$p/comm" 2> /dev/null)" = sleep ] && found=$p
    done
    [ -n "$found" ] || sleep 0.1
    i=$((i + 1))
  done
  [ -n "$found" ] || fail "the spawned sleep is not in $cg/cgroup.procs ($(tr '\n' ' ' < "$cg/cgroup.procs"))"
}

t_pids_max() {
  need_vm1
  [ -f "$cg/pids.max" ] || fail "no pids.max in $cg (pids controller not enabled for the container)"
  cur=$(cat "$cg/pids.current")
  limit=$((cur + 6))
  echo "$limit" > "$cg/pids.max" || fail "cannot write pids.max"
  events0=$(awk '$1 == "max" { print $2 }' "$cg/pids.events")
  capture ctl run vm1 -- sh -c 'i=0; while [ $i -lt 20 ]; do sleep 60 & i=$((i + 1)); echo $i; done'
  started=$(echo "$out" | tail -n 1)
  peak=$(cat "$cg/pids.current")
  events1=$(awk '$1 == "max" { print $2 }' "$cg/pids.events")
  echo max > "$cg/pids.max"
  for p in $(others); do
    [ "$(cat "/proc/$p/comm" 2> /dev/null)" = sleep ] && [ "$(tr '\0' ' ' < "/proc/$p/cmdline")" = "sleep 60 " ] &&
      kill -KILL "$p"
  done
  echo "limit $limit, started $started sleeps, pids.current after: $peak, pids.events max: $events0 -> $events1"
  [ "$rc" != 0 ] || fail "20 forks under pids.max=$limit all succeeded (started $started)"
  [ "${started:-0}" -lt 20 ] || fail "all 20 sleeps started under pids.max=$limit"
  [ "$peak" -le "$limit" ] || fail "pids.current $peak is above pids.max $limit"
  [ "$events1" -gt "$events0" ] || fail "pids.events max did not count the refused forks ($events0 -> $events1)"
}

t_wardenctl_stop() {
  need_vm1
  [ -n "$(others)" ] || fail "nothing but wshd runs in vm1 before stop (the spawned sleep is gone)"
  capture ctl stop vm1
  expect "stop ($err)" "$rc" 0
  expect "processes after stop" "$(others | tr '\n' ' ')" ""
  [ -d "/proc/$wshd_pid" ] || fail "stop killed wshd"
  capture ctl info vm1 --json
  expect "state after stop" "$(json_str state "$out")" stopped
}

# What a destroyed container with instance id $1 and path $2 may have left:
# its directory, cgroup, veths, mounts, iptables chains; with "all", also
# any container, cgroup, veth or helper process at all. Sets $left.
leftovers() {
  left=""
  [ ! -e "$2" ] || left="$left; $2 still exists"
  [ ! -e "$CG/instance-$1" ] || left="$left; cgroup $CG/instance-$1"
  [ ! -e "/sys/class/net/w-$1-0" ] || left="$left; interface w-$1-0"
  ! grep -q "$2" /proc/self/mountinfo || left="$left; mounts $(grep "$2" /proc/self/mountinfo)"
  chains=$(iptables -w -S 2> /dev/null | grep -c "warden-i-$1" || true)
  nat=$(iptables -w -t nat -S 2> /dev/null | grep -c "warden-i-$1" || true)
  [ "$chains$nat" = 00 ] || left="$left; iptables rules naming warden-i-$1"
  [ "${3:-}" = all ] || return 0
  [ -z "$(ctl list)" ] || left="$left; wardenctl list: $(ctl list | tr '\n' ' ')"
  for d in "$CG"/instance-*; do
    [ -e "$d" ] && left="$left; cgroup $d"
  done
  links=$(ip -o link show | awk -F': ' '$2 ~ /^w-/ { print $2 }' | tr '\n' ' ')
  [ -z "$links" ] || left="$left; interfaces $links"
  ! grep -q "$WARDEN_DEPOT/" /proc/self/mountinfo ||
    left="$left; mounts $(grep "$WARDEN_DEPOT/" /proc/self/mountinfo)"
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' < "$p/cmdline" 2> /dev/null)
    case "$cmd" in *wshd* | *iomux* | *"sleep 300"*) left="$left; process ${p#/proc/} ($cmd)" ;; esac
  done
  return 0
}

t_wardenctl_destroy() {
  need_vm1
  capture ctl destroy vm1
  expect "destroy ($err)" "$rc" 0
  leftovers "$id" "$path" all
  [ -z "$left" ] || fail "left behind${left}"
  rm -f "$STATE/vm1.id"
}

# Two containers at once; one destroyed while its jobs (and their children)
# still run, without a stop first: the other one is untouched.
t_wardenctl_two_containers() {
  for h in vm2 vm3; do
    capture ctl create --handle "$h"
    expect "create $h ($err)" "$rc" 0
  done
  id2=$(json_str id "$(ctl info vm2 --json)")
  id3=$(json_str id "$(ctl info vm3 --json)")
  [ -n "$id2" ] && [ -n "$id3" ] && [ "$id2" != "$id3" ] || fail "ids '$id2' and '$id3'"
  capture ctl spawn vm2 -- sh -c 'sleep 300 & sleep 300 & sleep 300'
  expect "spawn in vm2 ($err)" "$rc" 0
  capture ctl spawn vm2 --privileged -- sleep 300
  expect "privileged spawn in vm2 ($err)" "$rc" 0
  i=0
  while [ "$(wc -l < "$CG/instance-$id2/cgroup.procs")" -lt 5 ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  n=$(wc -l < "$CG/instance-$id2/cgroup.procs")
  [ "$n" -ge 5 ] || fail "vm2's cgroup holds $n processes, want wshd and 4 sleeps"
  expect "vm3's cgroup (wshd only)" "$(wc -l < "$CG/instance-$id3/cgroup.procs")" 1
  # The probe sees a live container (so its silence below means something).
  leftovers "$id2" "$WARDEN_DEPOT/vm2" all
  for thing in "cgroup $CG/instance-$id2" "interface w-$id2-0" "warden-i-$id2" "process"; do
    case "$left" in *"$thing"*) ;; *) fail "leftovers does not see vm2's $thing while it runs: $left" ;; esac
  done
  capture ctl destroy vm2
  expect "destroy busy vm2 ($err)" "$rc" 0
  leftovers "$id2" "$WARDEN_DEPOT/vm2"
  [ -z "$left" ] || fail "vm2 left behind${left}"
  capture ctl run vm3 -- echo still-here
  expect "vm3 after vm2's destroy ($err)" "$out" still-here
  [ -d "$CG/instance-$id3" ] || fail "vm3's cgroup went with vm2"
  capture ctl destroy vm3
  expect "destroy vm3 ($err)" "$rc" 0
  leftovers "$id3" "$WARDEN_DEPOT/vm3" all
  [ -z "$left" ] || fail "left behind${left}"
}

# ------------------------------------------ limits, devices, networking

# ctr HANDLE [CREATE ARGS]: create a container this test owns (the runner
# destroys whatever a failed test left), set $id, $cg, $path, $wshd_pid.
ctr() {
  _h=$1
  shift
  echo "$_h" >> "$STATE/owned"
  capture ctl create --handle "$_h" "$@"
  expect "create $_h ($err)" "$rc" 0
  id=$(json_str id "$(ctl info "$_h" --json)")
  [ -n "$id" ] || fail "no id for $_h"
  cg=$CG/instance-$id
  path=$WARDEN_DEPOT/$_h
  wshd_pid=$(cat "$path/run/wshd.pid")
}

# gone HANDLE ID: destroy it and check it left nothing.
gone() {
  capture ctl destroy "$1"
  expect "destroy $1 ($err)" "$rc" 0
  leftovers "$2" "$WARDEN_DEPOT/$1"
  [ -z "$left" ] || fail "$1 left behind${left}"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
  _what=$1 _n=$(($2 * 10))
  shift 2
  while ! "$@"; do
    _n=$((_n - 1))
    [ $_n -gt 0 ] || fail "timed out waiting for $_what"
    sleep 0.1
  done
}

is_stopped() {
  [ "$(json_str state "$(ctl info "$1" --json)")" = stopped ]
}

# listens HANDLE PORT: something in the container listens on tcp PORT.
listens() {
  ctl run "$1" -- sh -c "netstat -ltn 2>/dev/null | grep -q ':$2 '"
}

t_device_whitelist() {
  ctr dev1
  # The whitelist is a BPF program on the group, not a file.
  [ ! -e "$cg/devices.allow" ] || fail "a devices.allow file on cgroup v2?"
  # Control: outside the container this kernel lets root make a disk node.
  mknod "$STATE/blk" b 7 0 || fail "the host cannot mknod a block device (control)"
  rm -f "$STATE/blk"
  capture ctl run dev1 --privileged -- sh -c '
    id -u
    cat /dev/null && echo null-read
    echo x > /dev/null && echo null-write
    echo urandom-$(head -c 8 /dev/urandom | wc -c)
    echo zero-$(head -c 4 /dev/zero | wc -c)
    mknod /tmp/disk b 7 0 2>/dev/null && echo mknod-block
    mknod /tmp/mem c 1 1 2>/dev/null && echo mknod-mem
    echo done'
  echo "in the container: $(words "$out")"
  expect "root in the container" "$(words "$out")" "0 null-read null-write urandom-8 zero-4 done"
  # A node that exists (made from the host side, in the container's mount
  # namespace but not its cgroup) still cannot be opened from inside.
  nsenter -t "$wshd_pid" -m mknod /tmp/loop0 b 7 0 || fail "cannot make /tmp/loop0 from the host side"
  capture ctl run dev1 --privileged -- sh -c 'ls -l /tmp/loop0 >/dev/null && echo exists; head -c 1 /tmp/loop0 > /dev/null 2>&1 && echo opened; echo done'
  expect "open of a block node" "$(words "$out")" "exists done"
  # The tty and pty nodes of the whitelist work: a tty session runs.
  out=$(in_tty "$BIN/wsh --socket $path/run/wshd.sock tty")
  case "$out" in /dev/pts/*) ;; *) fail "tty in dev1: got '$out'" ;; esac
  gone dev1 "$id"
}

# probe ROOT|VCAP PROBE ARGS...: confine-probe's answer in container conf1.
probe() {
  _who=$1
  shift
  if [ "$_who" = root ]; then
    ctl run conf1 --privileged -- /bin/confine-probe "$@"
  else
    ctl run conf1 -- /bin/confine-probe "$@"
  fi
}

status_of() { # ROOT|VCAP FIELD
  if [ "$1" = root ]; then
    ctl run conf1 --privileged -- cat /proc/self/status
  else
    ctl run conf1 -- cat /proc/self/status
  fi 2> /dev/null | awk -v f="$2:" '$1 == f { print $2 }'
}

# The same attacker probes as tests/tests/confine.rs, on cgroup v2.
t_confinement() {
  ctr conf1 --bind-mount "$BIN/confine-probe:/bin/confine-probe:ro"
  for who in root vcap; do
    if [ $who = root ]; then caps=00000000a80405fb; else caps=0000000000000000; fi
    for set in CapInh CapPrm CapEff CapBnd; do
      expect "$who $set" "$(status_of $who $set)" "$caps"
    done
    expect "$who Seccomp" "$(status_of $who Seccomp)" 2
    expect "$who NoNewPrivs" "$(status_of $who NoNewPrivs)" 1
    for p in "mount cgroup2 /mnt" "mount tmpfs /tmp" "mount proc /mnt" "keyctl" "bpf" \
      "perf_event_open" "unshare_user" "clone_user" "ptrace 1" "raw_socket" "mknod /tmp/d 8 0"; do
      # shellcheck disable=SC2086 # the probe's words
      expect "$who $p" "$(probe $who $p)" EPERM
    done
    expect "$who open_by_handle" "$(probe $who open_by_handle /dev/shm)" "name_to_handle_at EPERM"
    expect "$who /proc/1/fd/0" "$(probe $who open /proc/1/fd/0)" EACCES
    expect "$who reads /proc/keys" "$(probe $who read /proc/keys)" "ok 0"
    # The v2 tree is neither mounted nor visible: the namespace root is the group.
    expect "$who /sys/fs/cgroup" "$(probe $who write /sys/fs/cgroup/cgroup.procs 1)" ENOENT
    expect "$who /proc/self/cgroup" "$(ctl run conf1 -- cat /proc/self/cgroup)" "0::/"
  done
  expect "root writes /proc/sys" "$(probe root write /proc/sys/kernel/domainname x)" EROFS
  # The container's own group limits it from the host's side still.
  expect "pids.max by default" "$(cat "$cg/pids.max")" "$(sed -n "s/^container_pids_limit='\(.*\)'$/\1/p" "$path/etc/config")"
  capture ctl run conf1 -- sh -c 'dd if=/dev/zero of=/dev/shm/f bs=1048576 count=100 2>/dev/null; stat -c %s /dev/shm/f'
  expect "/dev/shm fills at its size" "$out" 67108864
  expect "pid 1's environment" "$(tr -d '\0' < "/proc/$wshd_pid/environ" | wc -c)" 0
  expect "wshd.sock mode" "$(stat -c %a "$path/run/wshd.sock")" 600
  gone conf1 "$id"
}

# allow_nested_warden: the old unconfined container, the control.
t_confinement_nested() {
  ctr conf1 --allow-nested-warden --bind-mount "$BIN/confine-probe:/bin/confine-probe:ro"
  expect "nested Seccomp" "$(status_of root Seccomp)" 0
  for p in "keyctl" "unshare_user" "raw_socket" "mount tmpfs /tmp"; do
    # shellcheck disable=SC2086 # the probe's words
    expect "nested $p" "$(probe root $p)" ok
  done
  gone conf1 "$id"
}

# wardend on cgroup v2, driven by the warden shell: create, run (exit
# status and output), limit_memory answering the value in force, info,
# spawn + stream, a job's iomux-spawn forked by the zygote, destroy;
# nothing is left and SIGTERM ends the server.
t_wardend() {
  dir=$STATE/wardend
  mkdir -p "$dir" && chmod 700 "$dir"
  printf '%s\n' "server:" \
    "  unix_domain_path: $dir/warden.sock" \
    "  container_rootfs_path: $ROOTFS" \
    "  container_depot_path: $WARDEN_DEPOT" \
    "  container_grace_time: ~" \
    "network:" \
    "  pool_start_address: 10.254.8.0" \
    "  pool_size: 64" > "$dir/linux.yml"
  "$BIN/wardend" --config "$dir/linux.yml" > "$dir/log" 2>&1 &
  server=$!
  i=0
  while [ ! -S "$dir/warden.sock" ]; do
    i=$((i + 1))
    [ "$i" -lt 400 ] || fail "wardend did not listen: $(cat "$dir/log")"
    kill -0 "$server" 2> /dev/null || fail "wardend exited: $(cat "$dir/log")"
    sleep 0.05
  done
  capture warden_cmd create --handle vmd
  expect "warden create ($err)" "$rc" 0
  expect "create answer" "$out" "handle : vmd"
  id=$(json_str id "$(ctl info vmd --json)")
  [ -n "$id" ] || fail "no id for vmd"
  capture warden_cmd run --handle vmd --script 'cat /proc/self/cgroup; exit 6'
  expect "run exit status ($err)" "$rc" 6
  expect "run output" "$out" "0::/"
  capture warden_cmd limit_memory --handle vmd --limit_in_bytes 67108864
  expect "limit_memory ($err)" "$rc" 0
  expect "limit_memory answer" "$out" "limit_in_bytes : 67108864"
  expect "memory.max" "$(cat "$CG/instance-$id/memory.max")" 67108864
  capture warden_cmd info --handle vmd
  case "$out" in *"state : active"*) ;; *) fail "info: $out ($err)" ;; esac
  capture warden_cmd spawn --handle vmd --script 'echo one; echo two'
  job=$(printf '%s' "$out" | sed -n 's/^job_id : //p')
  [ -n "$job" ] || fail "spawn: $out ($err)"
  capture warden_cmd stream --handle vmd --job_id "$job"
  expect "stream ($err)" "$rc" 0
  expect "stream output" "$(words "$out")" "one two"
  # The job's iomux-spawn is forked by wardend's zygote, not exec'd.
  capture warden_cmd spawn --handle vmd --script 'sleep 30'
  job=$(printf '%s' "$out" | sed -n 's/^job_id : //p')
  [ -n "$job" ] || fail "spawn: $out ($err)"
  holder=$(cat "$WARDEN_DEPOT/vmd/jobs/$job/spawn.pid")
  parent=$(cut -d' ' -f4 "/proc/$holder/stat")
  case "$(tr '\0' ' ' < "/proc/$parent/cmdline")" in
    *"iomux-spawn --zygote"*) ;;
    *) fail "the job's iomux-spawn $holder has parent $parent: $(tr '\0' ' ' < "/proc/$parent/cmdline")" ;;
  esac
  capture warden_cmd destroy --handle vmd
  expect "destroy ($err)" "$rc" 0
  leftovers "$id" "$WARDEN_DEPOT/vmd"
  [ -z "$left" ] || fail "left behind${left}"
  kill -TERM "$server"
  wait "$server"
  expect "wardend's exit on SIGTERM" "$?" 0
  [ ! -e "$dir/warden.sock" ] || fail "the socket is left"
}

# The warden shell, one command, on the test's wardend.
warden_cmd() {
  "$BIN/warden" --socket "$STATE/wardend/warden.sock" -- "$@"
}

# events, ps and stats on cgroup v2 (tests/tests/observe.rs checks them in
# detail on the build machine's v1).
ps_has_sleep() {
  ctl ps "$1" 2> /dev/null | grep -q "sleep 60"
}
t_observe() {
  ctr obs1
  capture ctl limit-memory obs1 67108864
  expect "limit-memory ($err)" "$rc" 0
  capture ctl spawn obs1 -- sleep 60
  expect "spawn ($err)" "$rc" 0
  wait_for "ps to list the sleep" 30 ps_has_sleep obs1
  stats=$(ctl stats obs1 --json) || fail "stats failed"
  expect "stats: memory limit ($stats)" "$(json_num limit_bytes "$stats")" 67108864
  [ "$(json_num usage_bytes "$stats")" -gt 0 ] || fail "stats: no memory usage: $stats"
  [ "$(json_num current "$stats")" -ge 2 ] || fail "stats: fewer than 2 pids: $stats"
  expect "stats: pids max ($stats)" "$(json_num max "$stats")" "$(cat "$cg/pids.max")"
  [ "$(json_num usage_ns "$stats")" -gt 0 ] || fail "stats: no cpu time: $stats"
  pslist=$(ctl ps obs1 --json) || fail "ps failed"
  case "$pslist" in
    *'"user":"vcap"'*'"command":"sleep 60"'* | *'"command":"sleep 60"'*'"user":"vcap"'*) ;;
    *) fail "ps: no sleep 60 of vcap's: $pslist" ;;
  esac
  capture ctl run obs1 -- sh -c "x=\$(head -c 100000000 /dev/zero | tr '\\0' a); echo alive"
  case "$out" in *alive*) fail "the allocation survived the limit (exit $rc)" ;; esac
  wait_for "obs1 to be stopped after the OOM kill" 60 is_stopped obs1
  ev=$(ctl events obs1 --json)
  for kind in create oom job_exit; do
    case "$ev" in *"\"kind\":\"$kind\""*) ;; *) fail "events: no $kind: $ev" ;; esac
  done
  gone obs1 "$id"
}

# The container's first process is born in its group (wshd --cgroup,
# CLONE_INTO_CGROUP), never moved there; the profile names the step wshd
# took. (wshd-start gives a --cgroup that does not exist: the fallback.)
t_clone_into_cgroup() {
  prof=$STATE/clone.profile
  : > "$prof"
  export WARDEN_PROFILE="$prof"
  ctr cic1
  unset WARDEN_PROFILE
  grep -q '/wshd/clone into cgroup$' "$prof" ||
    fail "wshd did not clone into the group: $(grep -o '/wshd/[a-z ]*$' "$prof" | tr '\n' ',')"
  grep -q '/wshd/clone$' "$prof" && fail "wshd cloned without the group as well"
  expect "wshd's group" "$(cat "/proc/$wshd_pid/cgroup")" "0::/instance-$id"
  expect "pids.max" "$(cat "$cg/pids.max")" 4096
  capture ctl run cic1 -- cat /proc/self/cgroup
  expect "a job's group, seen inside ($err)" "$out" "0::/"
  gone cic1 "$id"
}

t_memory_oom() {
  ctr mem1
  capture ctl limit-memory mem1 50331648
  expect "limit-memory ($err)" "$rc" 0
  expect "limit-memory prints the limit" "$out" 50331648
  expect "memory.max" "$(cat "$cg/memory.max")" 50331648
  [ ! -f "$cg/memory.swap.max" ] || expect "memory.swap.max" "$(cat "$cg/memory.swap.max")" 0
  capture ctl limit-memory mem1 1000
  expect "a limit below the minimum ($err)" "$rc" 5
  expect "memory.max after a refused limit" "$(cat "$cg/memory.max")" 50331648
  # info reports v2's memory.stat under the names Warden clients read.
  info=$(ctl info mem1 --json)
  expect "info: hierarchical_memory_limit" "$(json_num hierarchical_memory_limit "$info")" 50331648
  [ "$(json_num rss "$info")" -gt 0 ] || fail "info: no rss in memory_stat: $info"
  [ -n "$(json_num cache "$info")" ] || fail "info: no cache in memory_stat: $info"
  kills0=$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.events")
  # A shell variable of 100 MB: the shell's heap grows past the limit.
  capture ctl run mem1 -- sh -c "x=\$(head -c 100000000 /dev/zero | tr '\\0' a); echo alive"
  case "$out" in *alive*) fail "the allocation survived the limit (exit $rc)" ;; esac
  kills1=$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.events")
  echo "memory.events oom_kill: $kills0 -> $kills1"
  [ "$kills1" -gt "$kills0" ] || fail "memory.events counted no oom_kill"
  wait_for "mem1 to be stopped after the OOM kill" 60 is_stopped mem1
  info=$(ctl info mem1 --json)
  case "$info" in *'"out of memory"'*) ;; *) fail "no out of memory event: $info" ;; esac
  gone mem1 "$id"
}

# bin/oom on cgroup v2 (the v1 path is tested on the build machine):
# inotify on memory.events, exit 0 at an OOM, 1 when the group goes.
oom_tool_group=$CG/vmt-oom-tool
oom_tool_cleanup() {
  [ -d "$oom_tool_group" ] || return 0
  for p in $(cat "$oom_tool_group/cgroup.procs" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    rmdir "$oom_tool_group" 2> /dev/null && return 0
    sleep 0.2
  done
}

# oom_tool_start: bin/oom on the group in the background ($oom_pid), once
# its inotify descriptor exists.
oom_tool_start() {
  "$BIN/oom" "$oom_tool_group" > "$STATE/oom.out" 2> "$STATE/oom.err" &
  oom_pid=$!
  wait_for "oom to watch memory.events" 30 oom_tool_watching
}
oom_tool_watching() {
  ls -l "/proc/$oom_pid/fd" 2> /dev/null | grep -q 'inotify'
}

# oom_tool_wait SECONDS: $oom_rc, or fail when oom is still running.
oom_tool_wait() {
  _n=$(($1 * 10))
  while kill -0 "$oom_pid" 2> /dev/null && [ "$(awk '{ print $3 }' "/proc/$oom_pid/stat" 2> /dev/null)" != Z ]; do
    _n=$((_n - 1))
    [ "$_n" -gt 0 ] || fail "oom still runs after $1 s: $(cat "$STATE/oom.err")"
    sleep 0.1
  done
  wait "$oom_pid"
  oom_rc=$?
}

t_oom_tool() {
  trap oom_tool_cleanup EXIT
  mkdir "$oom_tool_group" || fail "mkdir $oom_tool_group"
  echo 8388608 > "$oom_tool_group/memory.max" || fail "memory.max"
  [ ! -f "$oom_tool_group/memory.swap.max" ] || echo 0 > "$oom_tool_group/memory.swap.max"
  oom_tool_start
  sleep 0.5
  kill -0 "$oom_pid" || fail "oom exited with no OOM: $(cat "$STATE/oom.err")"
  # tail keeps a line without newline whole: 64 MiB in an 8 MiB group.
  sh -c "echo \$\$ > $oom_tool_group/cgroup.procs; exec sh -c 'head -c 64M /dev/zero | tail'"
  echo "the allocation exited $?; memory.events: $(words "$(cat "$oom_tool_group/memory.events")")"
  oom_tool_wait 30
  expect "oom's exit at an OOM ($(cat "$STATE/oom.err"))" "$oom_rc" 0
  expect "oom's stdout" "$(cat "$STATE/oom.out")" ""
  # A group that goes away: exit 1, within a second or so.
  oom_tool_start
  rmdir "$oom_tool_group" || fail "rmdir $oom_tool_group"
  oom_tool_wait 10
  expect "oom's exit when the group is removed" "$oom_rc" 1
  expect "oom's message" "$(cat "$STATE/oom.err")" \
    "access $oom_tool_group/memory.events: No such file or directory"
}

t_cpu_weight() {
  ctr cpu1
  id1=$id cg1=$cg
  ctr cpu2
  id2=$id cg2=$cg
  capture ctl limit-cpu cpu1 1024
  expect "limit-cpu 1024 ($err)" "$rc" 0
  expect "weight of 1024 shares" "$out" 39
  expect "cpu.weight" "$(cat "$cg1/cpu.weight")" 39
  capture ctl limit-cpu cpu2 3072
  expect "weight of 3072 shares" "$out" 118
  capture ctl limit-cpu cpu1 1
  expect "shares below 2 ($err)" "$rc" 5
  expect "cpu.weight after a refused value" "$(cat "$cg1/cpu.weight")" 39
  # Both spin on one cpu for a few seconds; usage follows the weights.
  for c in "$cg1" "$cg2"; do
    [ -f "$c/cpuset.cpus" ] || fail "no cpuset.cpus in $c (cpuset controller not enabled)"
    echo 0 > "$c/cpuset.cpus"
  done
  capture ctl spawn cpu1 -- sh -c 'while :; do :; done'
  capture ctl spawn cpu2 -- sh -c 'while :; do :; done'
  # Measured once both spin (a spawn takes a while under emulation).
  sleep 1
  u1=$(awk '$1 == "usage_usec" { print $2 }' "$cg1/cpu.stat")
  u2=$(awk '$1 == "usage_usec" { print $2 }' "$cg2/cpu.stat")
  sleep 4
  d1=$(($(awk '$1 == "usage_usec" { print $2 }' "$cg1/cpu.stat") - u1))
  d2=$(($(awk '$1 == "usage_usec" { print $2 }' "$cg2/cpu.stat") - u2))
  echo "cpu time over 4 s on one cpu: weight 39: ${d1} us, weight 118: ${d2} us"
  usage=$(json_num usage "$(ctl info cpu2 --json)")
  [ "${usage:-0}" -ge $((d2 * 1000)) ] || fail "info: cpu_stat usage ${usage:-none} ns is below the ${d2} us measured"
  [ "$d1" -gt 0 ] || fail "cpu1 got no cpu time"
  # 118/39 is about 3; allow for an emulated machine's noise.
  [ $((d2 * 10)) -ge $((d1 * 20)) ] || fail "weights 39:118 gave cpu time $d1:$d2 (want at least 1:2)"
  [ $((d2 * 10)) -le $((d1 * 50)) ] || fail "weights 39:118 gave cpu time $d1:$d2 (want at most 1:5)"
  gone cpu1 "$id1"
  gone cpu2 "$id2"
}

t_disk_loop() {
  ctr dl1 --disk-limit 16777216 --disk-inode-limit 300
  id1=$id
  # The limit is what the container can write (the image is sized so that
  # at least that much is free): 15 MiB fit, 32 do not.
  capture ctl run dl1 -- sh -c 'dd if=/dev/zero of=a bs=1M count=15 2>&1'
  expect "15 MiB under a 16 MiB limit ($out)" "$rc" 0
  capture ctl run dl1 -- sh -c 'rm a; dd if=/dev/zero of=big bs=1M count=32 2>/dev/null; echo $?; ls -l big'
  written=$(echo "$out" | awk 'NR == 2 { print $5 }')
  echo "dd exit and size: $(words "$out")"
  [ "$(echo "$out" | head -n 1)" != 0 ] || fail "32 MiB fit in a 16 MiB disk"
  [ "${written:-0}" -le 17825792 ] || fail "wrote $written bytes under a 16 MiB limit"
  capture ctl run dl1 -- sh -c 'rm -f big; i=0; while [ $i -lt 400 ] && touch f$i 2>/dev/null; do i=$((i + 1)); done; echo $i'
  echo "files made under 300 inodes: $out"
  # ext4 rounds the inode count up to fill its inode tables.
  { [ "$out" -ge 290 ] && [ "$out" -le 320 ]; } || fail "made $out files under an inode limit of 300"
  # Growing online: resize2fs needs CAP_SYS_RESOURCE, which the VM's root
  # has (the CI host's does not, so only this test covers it).
  capture ctl run dl1 -- sh -c 'rm -f f*; dd if=/dev/zero of=a bs=1M count=15 2>&1'
  expect "15 MiB again ($out)" "$rc" 0
  capture ctl limit-disk dl1 --byte-limit 33554432
  expect "limit-disk grows to 32 MiB ($err)" "$rc" 0
  capture ctl run dl1 -- sh -c 'dd if=/dev/zero of=b bs=1M count=15 2>&1'
  expect "15 MiB more after growing ($out)" "$rc" 0
  capture ctl run dl1 -- sh -c 'dd if=/dev/zero of=c bs=1M count=8 2>/dev/null'
  [ "$rc" != 0 ] || fail "38 MiB fit under a 32 MiB limit"
  capture ctl limit-disk dl1 --byte-limit 16777216
  expect "shrinking below what is used ($err)" "$rc" 5
  loops=$(losetup -a | grep -c "$path/" || true)
  expect "loop devices of dl1" "$loops" 1
  gone dl1 "$id1"
  expect "loop devices after destroy" "$(losetup -a | grep -c "$WARDEN_DEPOT/dl1/" || true)" 0
}

# The Warden way: uid quotas on the depot's filesystem, set with setquota.
t_disk_quota() {
  img=$STATE/quota.img
  qdepot=/var/lib/warden-quota
  truncate -s 256M "$img"
  mkfs.ext4 -q -F -O quota -E quotatype=usrquota "$img" || fail "mkfs.ext4 with quotas"
  mkdir -p "$qdepot"
  mount -o loop,usrquota "$img" "$qdepot" || fail "mount $img with usrquota"
  echo "$qdepot" >> "$STATE/quota-mounts"
  grep " $qdepot " /proc/self/mounts
  WARDEN_DEPOT=$qdepot
  ctr dq1
  uid=$(sed -n "s/^user_uid='\\{0,1\\}\\([0-9]*\\)'\\{0,1\\}$/\\1/p" "$path/etc/config")
  [ -n "$uid" ] || fail "no user_uid in $path/etc/config"
  capture ctl limit-disk dq1 --byte-limit 8388608 --inode-limit 200
  expect "limit-disk ($err)" "$rc" 0
  echo "$out"
  q=$(repquota -u -n "$qdepot" | awk -v u="#$uid" '$1 == u')
  echo "repquota: $q"
  [ -n "$q" ] || fail "repquota shows no line for uid $uid"
  expect "hard block limit of uid $uid" "$(echo "$q" | awk '{ print $5 }')" 8192
  expect "hard inode limit of uid $uid" "$(echo "$q" | awk '{ print $8 }')" 200
  capture ctl run dq1 -- sh -c 'dd if=/dev/zero of=big bs=1M count=32 2>/dev/null; echo $?; ls -l big'
  written=$(echo "$out" | awk 'NR == 2 { print $5 }')
  echo "dd as uid $uid: exit and size: $(words "$out")"
  used=$(repquota -u -n "$qdepot" | awk -v u="#$uid" '$1 == u { print $3 }')
  echo "blocks charged to uid $uid: $used"
  [ "$(echo "$out" | head -n 1)" != 0 ] || fail "32 MiB fit in an 8 MiB quota"
  [ "${written:-0}" -le 8388608 ] || fail "wrote $written bytes under an 8 MiB quota"
  gone dq1 "$id"
  umount "$qdepot" || fail "umount $qdepot: busy after destroy"
  rm -f "$img" "$STATE/quota-mounts"
}

# bin/repquota (Warden's repquota, the numbers its Ruby server reads): live
# usage and limits through quotactl, on a filesystem mounted with usrquota.
t_repquota_tool() {
  img=$STATE/repquota.img
  mnt=/var/lib/warden-repquota
  truncate -s 64M "$img"
  mkfs.ext4 -q -F -O quota -E quotatype=usrquota "$img" || fail "mkfs.ext4 with quotas"
  mkdir -p "$mnt"
  mount -o loop,usrquota "$img" "$mnt" || fail "mount $img with usrquota"
  echo "$mnt" >> "$STATE/quota-mounts"
  setquota -u 4242 2000 3000 30 40 "$mnt" || fail "setquota"
  dd if=/dev/zero of="$mnt/f" bs=1M count=1 2> /dev/null
  chown 4242 "$mnt/f"
  # No sync: the kernel's numbers are live.
  capture "$BIN/repquota" "$mnt" 4242 4243
  expect "repquota's exit ($err)" "$rc" 0
  echo "$out"
  expect "uid 4242: bytes, block soft/hard, grace, inodes, inode soft/hard, grace" \
    "$(echo "$out" | sed -n 1p)" "4242 1048576 2000 3000 0 1 30 40 0"
  expect "uid 4243, who owns nothing" "$(echo "$out" | sed -n 2p)" "4243 0 0 0 0 0 0 0 0"
  expect "lines" "$(echo "$out" | wc -l)" 2
  # Over the soft limit (1024 KiB used): the block grace time runs out at
  # a time in the future (seconds since the epoch).
  setquota -u 4242 1000 3000 30 40 "$mnt" || fail "setquota below the usage"
  capture "$BIN/repquota" "$mnt" 4242
  expect "repquota's exit ($err)" "$rc" 0
  grace=$(echo "$out" | awk '{ print $5 }')
  echo "over the soft limit: $out (now $(date +%s))"
  [ "$grace" -gt "$(date +%s)" ] || fail "no block grace time over the soft limit: $out"
  capture "$BIN/repquota" "$mnt/" 4242
  expect "a mount point with a slash ($err)" "$rc" 1
  expect "its message" "$out" "Couldn't find device for $mnt/"
  umount "$mnt" || fail "umount $mnt"
  rm -f "$img" "$STATE/quota-mounts"
}

# A network namespace of the test's own, joined to the host by a veth pair
# (10.99.0.1 host side, 10.99.0.2 inside), for traffic from "outside".
test_netns() {
  ip netns add vmt || fail "ip netns add"
  echo vmt >> "$STATE/netns"
  ip link add vmt-h type veth peer name vmt-n netns vmt || fail "veth for the test namespace"
  ip addr add 10.99.0.1/30 dev vmt-h
  ip link set vmt-h up
  ip netns exec vmt ip addr add 10.99.0.2/30 dev vmt-n
  ip netns exec vmt ip link set vmt-n up
  ip netns exec vmt ip link set lo up
  ip netns exec vmt ip route add default via 10.99.0.1
}

t_net_out() {
  ctr na
  ida=$id
  ctr nb
  idb=$id
  b_ip=$(json_str container_ip "$(ctl info nb --json)")
  [ -n "$b_ip" ] || fail "no container_ip for nb"
  capture ctl spawn nb -- sh -c 'while :; do nc -l -p 5002 >> got; done'
  wait_for "nc in nb to listen" 30 listens nb 5002
  capture ctl run na -- sh -c "echo before | nc -w 2 $b_ip 5002"
  [ "$rc" != 0 ] || fail "na reached nb before net-out"
  capture ctl net-out na --network 10.0.0.0/33
  expect "a bad network ($err)" "$rc" 5
  capture ctl net-out na --network "$b_ip" --port 5002
  expect "net-out ($err)" "$rc" 0
  capture ctl run na -- sh -c "echo after | nc -w 2 $b_ip 5002"
  expect "na to nb after net-out ($err)" "$rc" 0
  wait_for "the message in nb" 20 ctl run nb -- grep -q after got
  capture ctl run nb -- cat got
  expect "what nb received" "$out" after
  # Another port is still closed.
  capture ctl run na -- sh -c "echo other | nc -w 2 $b_ip 5003"
  [ "$rc" != 0 ] || fail "na reached nb on a port net-out did not name"
  gone na "$ida"
  gone nb "$idb"
}

t_net_in() {
  test_netns
  ctr srv
  capture ctl spawn srv -- sh -c 'while :; do echo hello-from-container | nc -l -p 8080; done'
  wait_for "nc in srv to listen" 30 listens srv 8080
  # Before net-in nothing answers on the host port.
  capture ip netns exec vmt nc -w 2 10.99.0.1 7001
  [ -z "$out" ] || fail "something answered on 10.99.0.1:7001 before net-in: $out"
  capture ctl net-in srv --host-port 7001 --container-port 8080
  expect "net-in ($err)" "$rc" 0
  expect "net-in prints the ports" "$out" "7001 8080"
  capture ctl net-in srv --host-port 7001
  expect "the same host port again ($err)" "$rc" 9
  capture ip netns exec vmt nc -w 5 10.99.0.1 7001
  expect "reply through net-in from the test namespace ($err)" "$out" hello-from-container
  gone srv "$id"
  # The forward went with the container.
  capture ip netns exec vmt nc -w 2 10.99.0.1 7001
  [ -z "$out" ] || fail "10.99.0.1:7001 still answers after destroy: $out"
  ip netns del vmt
  sed -i '/^vmt$/d' "$STATE/netns"
}

# -------------------------------------------------------------- runner

# What a test made and did not take down (it failed half-way): destroyed
# after it, so the next tests start from a clean host.
reap() {
  if [ -s "$STATE/owned" ]; then
    for h in $(cat "$STATE/owned"); do
      for d in "$WARDEN_DEPOT" /var/lib/warden-quota; do
        [ -d "$d/$h" ] && WARDEN_DEPOT=$d ctl destroy "$h" > /dev/null 2>&1
      done
    done
  fi
  if [ -s "$STATE/quota-mounts" ]; then
    for m in $(cat "$STATE/quota-mounts"); do umount "$m" 2> /dev/null; done
  fi
  if [ -s "$STATE/netns" ]; then
    for n in $(cat "$STATE/netns"); do ip netns del "$n" 2> /dev/null; done
  fi
  rm -f "$STATE/owned" "$STATE/quota-mounts" "$STATE/netns"
}

if [ "${1:-}" = --one ]; then
  mkdir -p "$STATE"
  fn=t_$(echo "$2" | tr '-' '_')
  "$fn" || fail "$fn returned $?"
  exit 0
fi

RESULTS=${VMTEST_RESULTS:-/dev/null}
TEST_TIMEOUT=${VMTEST_TEST_TIMEOUT:-240}
[ -n "$TEST_TIMEOUT" ] || TEST_TIMEOUT=240
mkdir -p "$STATE"
list=$TESTS
# VMTEST_ONLY names the tests to run, in its order (any t_ function here).
[ -z "${VMTEST_ONLY:-}" ] || list=$(echo "$VMTEST_ONLY" | tr ',' ' ')
[ "${VMTEST_INJECT:-}" = fail ] && list="$list injected-failing-probe"

passed=0
failed=0
for t in $list; do
  echo "=== $t"
  timeout -s KILL "$TEST_TIMEOUT" sh "$0" --one "$t" < /dev/null > "$STATE/log" 2>&1
  rc=$?
  sed 's/^/    /' "$STATE/log"
  reap
  if [ "$rc" = 0 ]; then
    line="VMTEST $t PASS"
    passed=$((passed + 1))
  else
    if [ "$rc" = 137 ]; then
      detail="timed out after ${TEST_TIMEOUT}s"
    else
      detail=$(grep -v '^[[:space:]]*$' "$STATE/log" | tail -n 1 | tr -d '\r' | cut -c1-300)
      detail="${detail:-exit $rc}"
    fi
    line="VMTEST $t FAIL $detail"
    failed=$((failed + 1))
  fi
  echo "$line"
  echo "$line" >> "$RESULTS"
done

if [ "${VMTEST_INJECT:-}" = hang ]; then
  echo "vmtest: hanging on purpose (harness self-test)"
  while :; do sleep 3600; done
fi
echo "VMTEST-DONE $passed $failed"
echo "VMTEST-DONE $passed $failed" >> "$RESULTS"
