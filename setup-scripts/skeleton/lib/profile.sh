# Wall-time profile of a script's steps, sourced only when WARDEN_PROFILE is
# set (common.sh and the root scripts define a no-op `prof` otherwise, so an
# unprofiled run pays one builtin call per step and starts no process).
#
#   prof NAME   the step NAME begins (the one in progress, if any, ends)
#
# A step lasts until the next `prof` of the same script or until its parent
# step ends (bench/profile.py works the ends out), so a script needs no
# closing mark. Steps nest: whatever runs during NAME (a script, wshd, a
# hook) reports under WARDEN_PROFILE_SCOPE=<scope>/NAME.
#
# Events are lines "[NS] B PATH". With WARDEN_PROFILE_PIPE (set by wardenctl)
# they go, without a time, into a pipe whose reader stamps them as they
# arrive: one write, no process. Without it (a Warden server sets only
# WARDEN_PROFILE=FILE) they are appended to FILE stamped by date(1), one
# process per step. A failure to record never fails the script.
prof_scope=${WARDEN_PROFILE_SCOPE:-}
prof() {
  if [ -n "${WARDEN_PROFILE_PIPE:-}" ]; then
    echo "B $prof_scope/$1" 2>/dev/null >> "$WARDEN_PROFILE_PIPE" || :
  else
    echo "$(date +%s%N) B $prof_scope/$1" 2>/dev/null >> "$WARDEN_PROFILE" || :
  fi
  WARDEN_PROFILE_SCOPE=$prof_scope/$1
  export WARDEN_PROFILE_SCOPE
}
