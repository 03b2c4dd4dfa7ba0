# Shared helpers for the instance scripts and hooks. POSIX sh: the hook that
# runs after pivot_root uses the container's own /bin/sh (busybox has no bash).
#
# Sourced with the working directory at the instance root.

[ -f etc/config ] && . ./etc/config

# prof NAME marks the start of a step of the wall-time profile
# (WARDEN_PROFILE, lib/profile.sh); unprofiled it is a no-op builtin, and
# in_step NAME CMD... runs CMD.
if [ -n "${WARDEN_PROFILE:-}" ]; then
  . ./lib/profile.sh
else
  prof() { :; }
  in_step() {
    shift
    "$@"
  }
fi

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# The container side of the veth and the ifb device are named after the
# host side, so every script agrees on them even when etc/config predates
# a variable.
network_host_iface=${network_host_iface:-w-${id:-x}-0}
network_container_iface=${network_container_iface:-w-${id:-x}-1}
network_ifb_iface=w-${id:-x}-2

# Helpers that end in _var set a variable instead of printing: `$(...)`
# forks a subshell, a measurable part of every create and destroy.

# 255.255.255.252 -> 30
mask_to_prefix() {
  mask_to_prefix_var "$1"
  echo "$prefix"
}

# Sets prefix.
mask_to_prefix_var() {
  _bits=0
  _old_ifs=$IFS
  IFS=.
  # shellcheck disable=SC2086
  set -- $1
  IFS=$_old_ifs
  for _octet in "$@"; do
    case "$_octet" in
      255) _bits=$((_bits + 8)) ;;
      254) _bits=$((_bits + 7)) ;;
      252) _bits=$((_bits + 6)) ;;
      248) _bits=$((_bits + 5)) ;;
      240) _bits=$((_bits + 4)) ;;
      224) _bits=$((_bits + 3)) ;;
      192) _bits=$((_bits + 2)) ;;
      128) _bits=$((_bits + 1)) ;;
      0) ;;
      *) die "bad netmask octet: $_octet" ;;
    esac
  done
  prefix=$_bits
}

# The device group both host-side devices (the veth's host end and the
# ifb) are born in: the host address as a number with its top bit cleared
# (ip(8) takes a group up to 2^31-1), 10.254.0.1 -> 184418305. Unique among
# live containers, as a pool is a range of fewer than 2^31 addresses whose
# /30s never overlap, and far above the small numbers /etc/iproute2/group
# names (under 65536 it is not used). destroy.sh deletes the group in one
# request: the kernel unregisters the devices of one request together, so
# the pair pays its RCU grace periods once, where two deletions pay them
# twice. Sets device_group (empty when there is none).
device_group_var() {
  device_group=
  _old_ifs=$IFS
  IFS=.
  # shellcheck disable=SC2086
  set -- $1
  IFS=$_old_ifs
  [ $# = 4 ] || return 0
  for _octet in "$@"; do
    case "$_octet" in
      '' | *[!0-9]* | 0?*) return 0 ;; # 0?*: sh reads a leading 0 as octal
    esac
    [ "$_octet" -le 255 ] || return 0
  done
  device_group=$(((($1 << 24) | ($2 << 16) | ($3 << 8) | $4) & 2147483647))
  [ "$device_group" -ge 65536 ] || device_group=
}

# The devices a container may use, in devices.allow syntax, one per line:
# /dev/null, zero, random, urandom, tty, ptmx, the pty slaves, fuse.
# v1 writes them to devices.allow; v2 compiles them into a BPF program
# (bin/cgroup-devices). Everything else is refused, mknod included.
device_whitelist='c 1:3 rwm
c 1:5 rwm
c 1:8 rwm
c 1:9 rwm
c 5:0 rwm
c 5:2 rwm
c 136:* rwm
c 10:229 rwm'

# v2 when the unified hierarchy holds the controllers at /sys/fs/cgroup.
cgroup_v2() {
  [ -f /sys/fs/cgroup/cgroup.controllers ]
}

# Where v2 instance groups live; their parent needs the controllers enabled.
cgroup2_parent=${WARDEN_CGROUP2_PARENT:-/sys/fs/cgroup}

# pids.max (container_pids_limit, 0 = none) is set before the process joins,
# so a fork bomb never finds the group unlimited; a host without the pids
# controller has no such file.
set_pids_max() {
  _pids_limit=${container_pids_limit:-4096}
  [ "$_pids_limit" != 0 ] && [ -f "$1/pids.max" ] || return 0
  echo "$_pids_limit" > "$1/pids.max"
}

# The container's v2 group, made (idempotent) with its controllers and
# pids.max, before any process is in it; sets cg. Made before the clone
# (hook-parent-before-clone.sh), so that wshd starts the container's first
# process in it, and again by hook-parent-after-clone.sh for a wshd that
# did not.
make_v2_group() {
  # Controllers must be enabled in the parent for the group to have them.
  read -r _controllers < "$cgroup2_parent/cgroup.controllers" || true
  for _c in $_controllers; do
    echo "+$_c" > "$cgroup2_parent/cgroup.subtree_control" 2>/dev/null || true
  done
  cg="$cgroup2_parent/instance-$id"
  [ -d "$cg" ] || mkdir -p "$cg"
  set_pids_max "$cg"
}

# Every hierarchy that gets a group for this container, one path per line:
# on v1 each mounted cgroup (v1) hierarchy, on v2 the one unified group.
# Mount points are read from the mount table rather than assumed, so hosts
# that mount the controllers elsewhere (the reference used /tmp/warden/cgroup)
# work as well.
instance_cgroups() {
  instance_cgroups_var
  [ -z "$cgroups" ] || echo "$cgroups"
}

# Sets cgroups: the same paths, one per line.
instance_cgroups_var() {
  if cgroup_v2; then
    cgroups="$cgroup2_parent/instance-$id"
    return 0
  fi
  cgroups=
  while read -r _dev _mp _type _opts _rest; do
    [ "$_type" = cgroup ] || continue
    cgroups="$cgroups${cgroups:+
}$_mp/instance-$id"
  done < /proc/self/mounts
}

# The group whose cgroup.procs lists every process of the container.
instance_procs_file() {
  if cgroup_v2; then
    echo "$cgroup2_parent/instance-$id/cgroup.procs"
    return 0
  fi
  _first=""
  for _cg in $(instance_cgroups); do
    case "$_cg" in
      */pids/instance-*|*/cpuacct/instance-*|*/cpu,cpuacct/instance-*)
        echo "$_cg/cgroup.procs"
        return 0
        ;;
    esac
    [ -n "$_first" ] || _first=$_cg
  done
  echo "$_first/cgroup.procs"
}

# Processes of the container as the host sees them (empty when none, or when
# the groups are already gone).
instance_pids() {
  _procs=$(instance_procs_file)
  if [ -f "$_procs" ]; then
    while read -r _pid; do
      echo "$_pid"
    done < "$_procs" 2>/dev/null || true
  fi
}

# Processes in any of the container's groups (a hook that failed half-way
# may have put the first process in some only); duplicates possible.
all_instance_pids() {
  all_instance_pids_var
  [ -z "$pids" ] || echo "$pids"
}

# Sets pids: the same, separated by spaces.
all_instance_pids_var() {
  instance_cgroups_var
  pids=
  _old_ifs=$IFS
  IFS='
'
  for _cg in $cgroups; do
    [ -f "$_cg/cgroup.procs" ] || continue
    while read -r _pid; do
      pids="$pids${pids:+ }$_pid"
    done < "$_cg/cgroup.procs" 2>/dev/null || true
  done
  IFS=$_old_ifs
}

# Resolve PATH (absolute, as seen inside the container) against ROOT without
# ever leaving ROOT: with merged /usr, /sbin is a symlink to usr/sbin, and
# following it from the host would land on the host's /usr/sbin.
path_in_root() {
  path_in_root_var "$@"
  echo "$resolved"
}

# Sets resolved.
path_in_root_var() {
  _root=$1
  _rest=${2#/}
  _done=""
  _hops=0
  while [ -n "$_rest" ]; do
    case "$_rest" in
      */*) _comp=${_rest%%/*}; _rest=${_rest#*/} ;;
      *) _comp=$_rest; _rest="" ;;
    esac
    case "$_comp" in
      ""|.) continue ;;
      ..) _done=${_done%/*}; continue ;;
    esac
    if [ -L "$_root$_done/$_comp" ]; then
      _hops=$((_hops + 1))
      [ "$_hops" -le 40 ] || die "too many symlinks resolving $2 in $_root"
      _target=$(readlink "$_root$_done/$_comp")
      case "$_target" in
        /*) _done=""; _rest=${_target#/}${_rest:+/$_rest} ;;
        *) _rest=$_target${_rest:+/$_rest} ;;
      esac
    else
      _done="$_done/$_comp"
    fi
  done
  resolved=$_root$_done
}
