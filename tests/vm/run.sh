#!/usr/bin/env bash
# The integration tests on a cgroup v2-only kernel: Debian's kernel booted
# under qemu (software emulation, no KVM needed) from an initramfs that holds
# busybox, our static binaries, the setup scripts, the busybox container
# rootfs, the kernel modules the tests need and the host tools the scripts
# call. Inside, tests/vm/init.sh makes a host that looks like a current
# distribution's (cgroup2 alone at /sys/fs/cgroup) and runs tests/vm/tests.sh.
#
#   tests/vm/run.sh              build, boot, run the tests, report
#   tests/vm/run.sh --self-test  check the harness: an injected failing probe
#                                must turn the run red, and a VM that hangs
#                                must be killed at the timeout and reported
#                                as a failure
#
# Environment: VM_TIMEOUT (seconds for the whole VM, default 900),
# VM_SELFTEST_TIMEOUT (the hang boot's timeout, default 60), VM_ONLY (space
# separated test names: run just these), VM_TEST_TIMEOUT (seconds per test
# inside the VM, default 240), VM_KERNEL_PKG (the linux-image package,
# default what linux-image-amd64 depends on).
#
# Output: one line per test (`PASS name` / `FAIL name: detail`), then
# `N passed, N failed`. Exit 0 only when every test passed and the VM
# powered off by itself after reporting that it was done. Everything lands
# under target/vm/ (kernel cache, initramfs, console and result logs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/vm
cache=$out/cache
release=$repo/target/x86_64-unknown-linux-gnu/release
rootfs=$repo/target/rootfs/busybox
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_SELFTEST_TIMEOUT=${VM_SELFTEST_TIMEOUT:-60}
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-240}

die() {
  echo "vm: $*" >&2
  exit 2
}
say() { echo "vm: $*" >&2; }

# The kernel modules the tests and scripts need; dependencies come from the
# kernel's own modules.dep.
modules=(
  overlay loop ext4 crc32c_generic quota_v2 quota_tree
  veth ifb sch_tbf sch_ingress act_mirred cls_u32 cls_matchall
  nf_tables nft_compat nft_chain_nat nft_nat nft_masq nft_ct
  nft_limit nft_log nft_reject nft_reject_inet nft_reject_ipv4 nft_fib_ipv4
  x_tables xt_conntrack xt_addrtype xt_MASQUERADE xt_nat xt_tcpudp
  xt_multiport xt_LOG xt_limit xt_comment xt_mark ipt_REJECT xt_state
  xt_iprange nf_log_syslog nf_conntrack nf_nat
)
# Host tools the setup scripts, wardenctl and the tests call, copied with
# their libraries (busybox covers the rest). /bin/sh is dash, as on Debian:
# Debian's static busybox sh runs its own applets ahead of PATH, so under it
# `ip` would be busybox's even where the real one is installed.
tools=(
  sh dash awk sed grep find xargs
  ip tc iptables iptables-save iptables-restore iptables-nft
  iptables-nft-save iptables-nft-restore xtables-nft-multi nft
  mke2fs mkfs.ext4 tune2fs e2fsck dumpe2fs resize2fs
  setquota quotaon quotaoff quotacheck repquota quota
  rsync flock nsenter unshare mount umount losetup findmnt script setsid
  mountpoint prlimit pgrep pkill ps
)
# Whole packages whose every program is copied: the scripts are written for
# GNU coreutils, as on any distribution.
tool_packages=(coreutils)

self_test=false
case "${1:-}" in
  --self-test) self_test=true ;;
  "") ;;
  -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, mknod in the initramfs)"

# ---------------------------------------------------------------- host side

need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
}

# The kernel is unpacked into the cache, never installed: installing it
# would run the host's boot-loader and initramfs hooks for nothing.
fetch_kernel() {
  local pkg=${VM_KERNEL_PKG:-}
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$pkg" ]; then
      apt-get update -qq
      pkg=$(apt-cache depends linux-image-amd64 |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    fi
  fi
  [ -n "$pkg" ] || die "cannot tell which kernel linux-image-amd64 stands for"
  kdir=$cache/$pkg
  if [ ! -f "$kdir/.done" ]; then
    say "fetching $pkg"
    rm -rf "$kdir" "$cache/dl"
    mkdir -p "$cache/dl"
    # _apt cannot write to a root-owned directory; the download is then done
    # as root, which apt reports as a warning only.
    # Stale package lists name a file the mirror no longer has: refresh once.
    (cd "$cache/dl" && { apt-get download "$pkg" 2>&1 ||
      { apt-get update -qq && apt-get download "$pkg" 2>&1; }; }) |
      grep -v '^W: Download is performed unsandboxed' || true
    local deb
    deb=$(find "$cache/dl" -name "${pkg}_*.deb" | head -n 1)
    [ -n "$deb" ] || die "apt-get download $pkg failed"
    dpkg-deb -x "$deb" "$kdir"
    rm -rf "$cache/dl"
    kver=$(ls "$kdir/lib/modules")
    # The package ships no modules.dep (its postinst makes it).
    depmod -b "$kdir" "$kver"
    : > "$kdir/.done"
  fi
  kver=$(ls "$kdir/lib/modules")
  vmlinuz=$kdir/boot/vmlinuz-$kver
  [ -f "$vmlinuz" ] || die "$vmlinuz is missing"
}

# Copy FILE (absolute) into the stage at the same path, following links.
put() {
  local src=$1 dst=$stage${2:-$1}
  mkdir -p "$(dirname "$dst")"
  [ -e "$dst" ] || cp -L "$src" "$dst"
}

# The shared libraries of FILE, from ldd, into the stage.
put_libs() {
  local lib
  for lib in $(ldd "$1" 2>/dev/null | awk '/=>/ { print $3 } /^[[:space:]]*\// { print $1 }'); do
    [ -f "$lib" ] && put "$lib"
  done
  return 0
}

build_modules() {
  local moddir=$kdir/lib/modules/$kver dst=$stage/lib/modules/$kver
  declare -A path_of deps_of added
  local line key rel
  while IFS= read -r line; do
    rel=${line%%:*}
    key=${rel##*/}
    key=${key%.ko}
    key=${key//-/_}
    path_of[$key]=$rel
    deps_of[$key]=${line#*:}
  done < "$moddir/modules.dep"
  declare -A builtin
  while IFS= read -r rel; do
    key=${rel##*/}
    key=${key%.ko}
    builtin[${key//-/_}]=1
  done < "$moddir/modules.builtin"
  load=()
  add_module() {
    local name=${1//-/_} dep d
    [ -n "${added[$name]:-}" ] || [ -n "${builtin[$name]:-}" ] && return 0
    [ -n "${path_of[$name]:-}" ] || die "no module $name in $moddir/modules.dep"
    added[$name]=1
    # modules.dep lists every dependency, the deepest last.
    local -a ds
    read -r -a ds <<< "${deps_of[$name]}"
    for ((d = ${#ds[@]} - 1; d >= 0; d--)); do
      dep=${ds[$d]##*/}
      add_module "${dep%.ko}"
    done
    load+=("${path_of[$name]}")
  }
  local m
  for m in "${modules[@]}"; do
    add_module "$m"
  done
  mkdir -p "$dst"
  for rel in "${load[@]}"; do
    mkdir -p "$dst/$(dirname "$rel")"
    cp "$moddir/$rel" "$dst/$rel"
  done
  printf '%s\n' "${load[@]}" > "$dst/modules.load"
  # busybox modprobe (the kernel's autoloader) with what is in the image.
  grep -F -f <(printf '%s:\n' "${load[@]}") "$moddir/modules.dep" > "$dst/modules.dep"
  grep -F -f <(printf ' %s\n' "${load[@]##*/}" | sed 's/\.ko$//') "$moddir/modules.alias" \
    > "$dst/modules.alias" || true
  cp "$moddir/modules.builtin" "$moddir/modules.order" "$dst/"
}

build_initramfs() {
  stage=$out/initramfs.d
  rm -rf "$stage"
  mkdir -p "$stage"/{usr/bin,lib,lib64,etc,dev,proc,sys,tmp,run,root,var/lib,opt/warden/bin,opt/vmtest}
  # Merged /usr as on current distributions: one directory of programs, so
  # no PATH order can pick a busybox applet over the real tool.
  ln -s usr/bin "$stage/bin"
  ln -s usr/bin "$stage/sbin"
  ln -s bin "$stage/usr/sbin"
  mknod -m 0600 "$stage/dev/console" c 5 1
  mknod -m 0666 "$stage/dev/null" c 1 3

  local busybox
  busybox=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n 1)
  [ -x "$busybox" ] || die "busybox-static has no /bin/busybox"
  cp "$busybox" "$stage/usr/bin/busybox"

  local t src pkg
  for t in "${tools[@]}"; do
    src=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$t") || die "host tool $t is missing"
    put "$src" "/usr/bin/$t"
    put_libs "$src"
  done
  for pkg in "${tool_packages[@]}"; do
    for src in $(dpkg -L "$pkg" | grep -E '^(/usr)?/s?bin/[^/]+$'); do
      [ -f "$src" ] || continue
      put "$src" "/usr/bin/${src##*/}"
      put_libs "$src"
    done
  done
  # iptables loads its extensions with dlopen, so ldd does not name them.
  local xt=/usr/lib/x86_64-linux-gnu/xtables
  if [ -d "$xt" ]; then
    mkdir -p "$stage$xt"
    cp -a "$xt/." "$stage$xt/"
    for src in "$xt"/*.so; do put_libs "$src"; done
  fi
  for t in $("$stage/usr/bin/busybox" --list); do
    [ -e "$stage/usr/bin/$t" ] || ln -s busybox "$stage/usr/bin/$t"
  done

  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    > "$stage/etc/passwd"
  printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$stage/etc/group"
  printf '127.0.0.1 localhost vm\n' > "$stage/etc/hosts"
  printf 'nameserver 127.0.0.1\n' > "$stage/etc/resolv.conf"
  printf 'hosts: files\npasswd: files\ngroup: files\n' > "$stage/etc/nsswitch.conf"
  ln -s /proc/self/mounts "$stage/etc/mtab"
  for f in /etc/protocols /etc/services /etc/ethertypes; do
    [ -f "$f" ] && put "$f"
  done
  [ -d /etc/iproute2 ] && cp -a /etc/iproute2 "$stage/etc/"
  [ -d /usr/share/iproute2 ] && mkdir -p "$stage/usr/share" && cp -a /usr/share/iproute2 "$stage/usr/share/"
  printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$stage/etc/ld.so.conf"
  ldconfig -r "$stage"

  build_modules

  local b
  for b in wshd wsh iomux-spawn iomux-link cgroup-devices wardenctl wardend warden confine-probe oom repquota closefds; do
    cp "$release/$b" "$stage/opt/warden/bin/$b"
  done
  mkdir -p "$stage/opt/warden/setup-scripts"
  cp -a "$repo/setup-scripts/root" "$repo/setup-scripts/skeleton" "$stage/opt/warden/setup-scripts/"
  cp -a "$rootfs" "$stage/opt/warden/rootfs"
  install -m 0755 "$here/init.sh" "$stage/init"
  install -m 0755 "$here/tests.sh" "$stage/opt/vmtest/tests.sh"

  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | "$stage/usr/bin/busybox" cpio -o -H newc 2> /dev/null) |
    gzip -1 > "$out/initramfs.cpio.gz"
  say "initramfs: $(du -sh "$stage" | cut -f1) unpacked, $(du -h "$out/initramfs.cpio.gz" | cut -f1) packed"
}

# ------------------------------------------------------------------ the run

# boot NAME TIMEOUT EXTRA_CMDLINE: boot the VM once; its console goes to
# target/vm/NAME/console.log, the result lines to target/vm/NAME/results.log.
# Sets boot_rc (qemu's exit, 124 when the timeout killed it).
boot() {
  local name=$1 limit=$2 extra=$3 dir=$out/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  say "booting $name (timeout ${limit}s)"
  local start=$SECONDS
  boot_rc=0
  timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -machine pc -accel tcg -m 1G -smp 2 -nographic -no-reboot -nic none \
    -monitor none -serial "file:$dir/console.log" -serial "file:$dir/results.log" \
    -kernel "$vmlinuz" -initrd "$out/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 loglevel=4 cgroup_no_v1=all vmtest.test_timeout=$VM_TEST_TIMEOUT $extra" \
    < /dev/null > "$dir/qemu.log" 2>&1 || boot_rc=$?
  boot_secs=$((SECONDS - start))
}

# report NAME: print the results of boot NAME and the summary line; sets
# passed, failed and done_ok. The VM's own count is checked against the
# lines that arrived, so a lost line cannot hide a failure.
report() {
  local boot_name=$1 dir=$out/$1 line name status detail
  passed=0
  failed=0
  done_ok=false
  local done_line=""
  tr -d '\r' < "$dir/results.log" > "$dir/results.txt" 2> /dev/null || : > "$dir/results.txt"
  while IFS= read -r line; do
    case "$line" in
      "VMTEST-DONE "*) done_line=$line ;;
      "VMTEST "*)
        read -r _ name status detail <<< "$line"
        if [ "$status" = PASS ]; then
          passed=$((passed + 1))
          echo "PASS $name"
        else
          failed=$((failed + 1))
          echo "FAIL $name: ${detail:-no detail}"
        fi
        ;;
    esac
  done < "$dir/results.txt"
  if [ "$boot_rc" = 124 ] || [ "$boot_rc" = 137 ]; then
    failed=$((failed + 1))
    echo "FAIL vm: timed out after ${boot_secs}s (VM killed; console: $dir/console.log)"
  elif [ -z "$done_line" ]; then
    failed=$((failed + 1))
    echo "FAIL vm: no VMTEST-DONE line (qemu exit $boot_rc; console: $dir/console.log)"
  else
    local vm_passed vm_failed
    read -r _ vm_passed vm_failed _ <<< "$done_line"
    if [ "$vm_passed" != "$passed" ] || [ "$vm_failed" != "$failed" ]; then
      failed=$((failed + 1))
      echo "FAIL vm: the VM counted $vm_passed passed, $vm_failed failed; $passed and $failed lines arrived"
    elif [ $((passed + failed)) = 0 ]; then
      failed=1
      echo "FAIL vm: no test ran"
    elif [ "$boot_rc" != 0 ]; then
      failed=$((failed + 1))
      echo "FAIL vm: qemu exited with $boot_rc (see $dir/qemu.log)"
    else
      done_ok=true
    fi
  fi
  if [ "$failed" -gt 0 ]; then
    echo "--- last lines of $dir/console.log:"
    tr -d '\r' < "$dir/console.log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | tail -n 40
    echo "---"
  fi
  say "$boot_name: the VM ran ${boot_secs}s"
}

need_packages qemu-system-x86 busybox-static kmod quota iproute2 iptables nftables \
  e2fsprogs rsync util-linux mount bsdutils procps coreutils dash mawk file
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 is missing"
for b in wshd wsh iomux-spawn iomux-link cgroup-devices wardenctl wardend warden confine-probe oom repquota closefds; do
  if [ ! -x "$release/$b" ]; then
    say "building the release binaries"
    (cd "$repo" && cargo build --release --workspace)
    break
  fi
done
[ -x "$rootfs/bin/busybox" ] || "$repo/setup-scripts/rootfs/busybox.sh" --with rsync "$rootfs" > /dev/null
mkdir -p "$out" "$cache"
fetch_kernel
build_initramfs

if ! $self_test; then
  only=${VM_ONLY:-}
  boot run "$VM_TIMEOUT" "${only:+vmtest.only=${only// /,}}"
  report run
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ] && $done_ok
  exit $?
fi

# Self-test: each boot runs one real test and an injected probe.
ok=0
bad=0
boot selftest-fail "$VM_TIMEOUT" "vmtest.only=cgroup2-only vmtest.inject=fail"
report selftest-fail > "$out/selftest-fail/report.txt"
sed 's/^/  selftest-fail: /' "$out/selftest-fail/report.txt"
if [ "$failed" -gt 0 ] && grep -q '^VMTEST injected-failing-probe FAIL' "$out/selftest-fail/results.txt" &&
  grep -q '^VMTEST cgroup2-only PASS' "$out/selftest-fail/results.txt"; then
  echo "PASS self-test-failing-probe (run red: $passed passed, $failed failed)"
  ok=$((ok + 1))
else
  echo "FAIL self-test-failing-probe: the injected failure did not turn the run red ($passed passed, $failed failed)"
  bad=$((bad + 1))
fi
boot selftest-hang "$VM_SELFTEST_TIMEOUT" "vmtest.only=cgroup2-only vmtest.inject=hang"
report selftest-hang > "$out/selftest-hang/report.txt"
sed 's/^/  selftest-hang: /' "$out/selftest-hang/report.txt"
if { [ "$boot_rc" = 124 ] || [ "$boot_rc" = 137 ]; } && [ "$failed" -gt 0 ] && ! $done_ok &&
  grep -q '^VMTEST cgroup2-only PASS' "$out/selftest-hang/results.txt"; then
  echo "PASS self-test-hang (killed after ${boot_secs}s, reported as failure)"
  ok=$((ok + 1))
else
  echo "FAIL self-test-hang: qemu exit $boot_rc after ${boot_secs}s, $passed passed, $failed failed"
  bad=$((bad + 1))
fi
echo "$ok passed, $bad failed"
[ "$bad" = 0 ]
