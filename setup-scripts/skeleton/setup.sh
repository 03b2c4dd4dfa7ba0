#!/bin/sh
# Prepare a fresh instance directory (a copy of the skeleton). Run once by
# root/create.sh.
#
# Environment (as a Warden server passes it): id, network_host_ip,
# network_container_ip, network_netmask, user_uid, rootfs_path,
# allow_nested_warden, container_iface_mtu, dns_servers; and, optional (a
# Warden server passes none of them, so they have defaults):
# job_output_limit (bytes of output a job may keep, stdout and stderr
# together, 0 = unlimited; default 10485760), container_pids_limit (pids.max,
# 0 = none; default 4096), container_shm_size (bytes of /dev/shm; default
# 67108864).
#
# Nothing is mounted here: the files the container needs to differ from its
# rootfs (users, hostname, hosts, resolv.conf, vcap's home) are written
# straight into the overlay's upper layer, tmp/rootfs; the overlay itself is
# mounted by hook-parent-before-clone.sh inside wshd's mount namespace.
[ -n "${DEBUG:-}" ] && set -x
set -eu

case "$0" in */*) cd "${0%/*}" ;; esac
. ./lib/common.sh

prof "check environment"
[ -n "${id:-}" ] || die "id is not set"
case "$id" in *[!0-9a-zA-Z_]*) die "id may only hold letters, digits and _: $id" ;; esac
[ ${#id} -le 11 ] || die "id is longer than 11 characters (interface names): $id"
network_netmask=${network_netmask:-255.255.255.252}
network_host_ip=${network_host_ip:-10.254.0.1}
network_container_ip=${network_container_ip:-10.254.0.2}
user_uid=${user_uid:-10000}
rootfs_path=${rootfs_path:-}
allow_nested_warden=${allow_nested_warden:-false}
container_iface_mtu=${container_iface_mtu:-1500}
dns_servers=${dns_servers:-}
job_output_limit=${job_output_limit:-10485760}
container_pids_limit=${container_pids_limit:-4096}
container_shm_size=${container_shm_size:-67108864}
[ -n "$rootfs_path" ] || die "rootfs_path is not set"
[ -d "$rootfs_path" ] || die "rootfs $rootfs_path is not a directory"
case "$user_uid" in ''|*[!0-9]*) die "user_uid must be a number: $user_uid" ;; esac
number() {
  case "$2" in ''|*[!0-9]*) die "$1 must be a number: $2" ;; esac
}
number job_output_limit "$job_output_limit"
number container_pids_limit "$container_pids_limit"
number container_shm_size "$container_shm_size"

# The host side is private whatever umask we were given: state, job output
# and wshd's logs are root's alone, and container root's setuid files in
# tmp/rootfs are out of other host users' reach. wshd's logs are made here so
# that start.sh's redirections keep the mode.
prof "directories, logs"
umask 077
# Made 0700 by mkdir under this umask; chmod only for what existed before.
chmod=
for d in etc run jobs tmp; do
  [ ! -d "$d" ] || chmod="$chmod $d"
done
mkdir -p etc run jobs tmp mnt bin
# shellcheck disable=SC2086 # a list of plain names
[ -z "$chmod" ] || chmod 0700 $chmod
: > run/wshd.out.log
: > run/wshd.err.log

prof "etc config"
# Values are single-quoted so that sourcing the file never expands anything
# (a ' inside becomes '\''). Builtins only: no subshell per value.
setting() { # NAME VALUE: prints NAME='VALUE'
  _rest=$2
  _quoted=
  while :; do
    case "$_rest" in
      *\'*)
        _quoted="$_quoted${_rest%%\'*}'\\''"
        _rest=${_rest#*\'}
        ;;
      *)
        _quoted="$_quoted$_rest"
        break
        ;;
    esac
  done
  printf "%s='%s'\n" "$1" "$_quoted"
}
{
  setting id "$id"
  setting network_netmask "$network_netmask"
  setting network_host_ip "$network_host_ip"
  setting network_host_iface "w-$id-0"
  setting network_container_ip "$network_container_ip"
  setting network_container_iface "w-$id-1"
  setting user_uid "$user_uid"
  setting rootfs_path "$rootfs_path"
  setting allow_nested_warden "$allow_nested_warden"
  setting container_iface_mtu "$container_iface_mtu"
  setting dns_servers "$dns_servers"
  setting job_output_limit "$job_output_limit"
  setting container_pids_limit "$container_pids_limit"
  setting container_shm_size "$container_shm_size"
} > etc/config

# What the container reads (the overlay's upper layer) keeps ordinary modes.
prof "upper layer"
umask 022

# Every process started here is a measurable part of `create`, hence the
# shell builtins and the few, batched, external commands below.
lower=$rootfs_path
upper=tmp/rootfs
path_in_root_var "$lower" /etc
etc=${resolved#"$lower"}
path_in_root_var "$lower" /home
home=${resolved#"$lower"}

# A directory of the upper layer shadows the attributes of the lower one, so
# it gets the lower one's mode and owner (when they differ from mkdir's);
# one stat for both.
mkdir -p tmp/rootfs tmp/work "$upper$etc" "$upper$home"
set --
for d in "$etc" "$home"; do
  [ ! -d "$lower$d" ] || set -- "$@" "$lower$d"
done
if [ $# -gt 0 ]; then
  attrs=$(stat -c '%a %u %g %n' -- "$@")
  while read -r mode uid gid name; do
    [ "$mode $uid $gid" != "755 0 0" ] || continue
    chmod --reference="$name" "$upper${name#"$lower"}"
    chown --reference="$name" "$upper${name#"$lower"}"
  done <<ATTRS
$attrs
ATTRS
fi

prof "passwd, group"
# vcap gets the uid from the pool (and a group of the same number); the files
# are edited as copies, so no useradd is needed (busybox has none).
passwd_src="$lower$etc/passwd"
group_src="$lower$etc/group"
[ -f "$passwd_src" ] || passwd_src=/dev/null
[ -f "$group_src" ] || group_src=/dev/null
# The rootfs's own vcap uid and gid (when it has one) go to etc/config as
# user_old_uid and group_old_gid: hook-parent-before-clone.sh gives what they
# own to the new ones, as the reference's usermod/groupmod and find did.
# Read and written with builtins (files of a few dozen lines; awk would be
# a process): the line of vcap gets the new uid (and, in passwd, gid);
# every other line is kept as it is.
# vcap_fields LINE (vcap's): sets _pw (field 2), _old (field 3) and _after3
# (what follows field 3, from its ":"; empty when there is no field 4).
vcap_fields() {
  _f=${1#vcap}
  _f=${_f#:}
  _pw=${_f%%:*}
  _old=
  _after3=
  case "$_f" in *:*) _f=${_f#*:} ;; *) return 0 ;; esac
  _old=${_f%%:*}
  case "$_f" in *:*) _after3=:${_f#*:} ;; esac
}
user_old_uid=
group_old_gid=
found=false
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    vcap|vcap:*)
      vcap_fields "$line"
      user_old_uid=$_old
      found=true
      # Field 4 (the gid) is replaced too; what follows it is kept.
      _g=${_after3#:}
      case "$_g" in *:*) _rest=:${_g#*:} ;; *) _rest= ;; esac
      line="vcap:$_pw:$user_uid:$user_uid$_rest"
      ;;
  esac
  printf '%s\n' "$line"
done < "$passwd_src" > "$upper$etc/passwd"
"$found" || printf 'vcap:x:%s:%s::/home/vcap:/bin/sh\n' "$user_uid" "$user_uid" >> "$upper$etc/passwd"
found=false
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    vcap|vcap:*)
      vcap_fields "$line"
      group_old_gid=$_old
      found=true
      line="vcap:$_pw:$user_uid$_after3"
      ;;
  esac
  printf '%s\n' "$line"
done < "$group_src" > "$upper$etc/group"
"$found" || printf 'vcap:x:%s:\n' "$user_uid" >> "$upper$etc/group"
case "$user_old_uid" in *[!0-9]*) user_old_uid= ;; esac
case "$group_old_gid" in *[!0-9]*) group_old_gid= ;; esac
{
  setting user_old_uid "$user_old_uid"
  setting group_old_gid "$group_old_gid"
} >> etc/config

prof "vcap home"
install -d -o "$user_uid" -g "$user_uid" -m 0755 "$upper$home/vcap"

prof "hostname, hosts, resolv.conf"
echo "$id" > "$upper$etc/hostname"
printf '127.0.0.1 localhost\n%s %s\n%s host\n' "$network_container_ip" "$id" "$network_host_ip" \
  > "$upper$etc/hosts"

# resolv.conf: the servers asked for, else the host's; a loopback nameserver
# means nothing from inside the container, so it becomes the host's veth.
# The Ruby server joins them with newlines; commas and spaces are taken too.
if [ -n "$dns_servers" ]; then
  old_ifs=$IFS
  IFS=",
 	"
  for server in $dns_servers; do
    [ -n "$server" ] || continue
    echo "nameserver $server"
  done > "$upper$etc/resolv.conf"
  IFS=$old_ifs
elif [ -r /etc/resolv.conf ]; then
  # `|| [ -n "$line" ]`: a last line without a newline counts too.
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      nameserver*127.*) echo "nameserver $network_host_ip" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done < /etc/resolv.conf > "$upper$etc/resolv.conf"
else
  : > "$upper$etc/resolv.conf"
fi
