# Wall-time profile of a script's steps, sourced only when WARDEN_PROFILE is
# set (common.sh and the root scripts define a no-op `prof` otherwise, so an
# unprofiled run pays one builtin call per step and starts no process).
#
#   prof NAME   the step NAME begins (the one in progress, if any, ends)
#   in_step NAME CMD...   runs CMD as the sub-step NAME of the step in
#               progress, its end marked when CMD returns: for steps run
#               side by side (in the background), which no next `prof` ends
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
# prof_event B|E PATH
prof_event() {
  if [ -n "${WARDEN_PROFILE_PIPE:-}" ]; then
    echo "$1 $2" 2>/dev/null >> "$WARDEN_PROFILE_PIPE" || :
  else
    echo "$(date +%s%N) $1 $2" 2>/dev/null >> "$WARDEN_PROFILE" || :
  fi
}
prof() {
  prof_event B "$prof_scope/$1"
  WARDEN_PROFILE_SCOPE=$prof_scope/$1
  export WARDEN_PROFILE_SCOPE
}
in_step() {
  _step=${WARDEN_PROFILE_SCOPE:-}/$1
  shift
  prof_event B "$_step"
  # Run apart and waited for: under `||` a function would run with set -e
  # off, and go on past a failure that unprofiled stops it.
  _status=0
  (
    WARDEN_PROFILE_SCOPE=$_step
    export WARDEN_PROFILE_SCOPE
    "$@"
  ) &
  wait "$!" || _status=$?
  prof_event E "$_step"
  return "$_status"
}
