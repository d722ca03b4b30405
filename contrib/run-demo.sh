#!/bin/sh
# run-demo.sh BUILD: what `make run` starts. qsupd in the foreground with
# the demo profile (profiles/demo.ini, which autostarts the tiny test
# guest), its runtime files and control socket under BUILD/run. Ctrl-C stops
# the guest, then the daemon; a second Ctrl-C kills the guest.
set -eu
BUILD=${1:-build}
RUN=$BUILD/run
mkdir -p "$RUN/profiles"
# A symlink: the profile's relative paths stay relative to profiles/.
ln -sfn "$(pwd)/profiles/demo.ini" "$RUN/profiles/demo.ini"
cat >&2 <<MSG
run-demo: qsupd in the foreground; the demo guest boots under TCG (a few seconds).
run-demo: in another terminal:
    $BUILD/qsupctl -s $RUN/qsupd.sock list
    $BUILD/qsupctl -s $RUN/qsupd.sock console demo     (Ctrl-] detaches)
    $BUILD/qsupctl -s $RUN/qsupd.sock log -f demo      (QEMU's output; Ctrl-C ends)
    $BUILD/qsupctl -s $RUN/qsupd.sock stop demo
run-demo: Ctrl-C here stops the guest (ACPI power-off), then the daemon; a second
run-demo: Ctrl-C kills the guest at once. The console's commands: type 'help' there.
MSG
exec "$BUILD/qsupd" -f --profiles "$RUN/profiles" --run-dir "$RUN" --state-dir "$RUN/state" \
	--log-dir "$RUN/log" --stop-guests-on-exit
