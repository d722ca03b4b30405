#!/bin/sh
# contrib/ocf/README's two-node pcs recipe, run offline: no pcsd, no
# cluster. The pcs command lines are taken from the README itself (the
# "A two-node cluster (pcs)" section, continuation lines joined) and run
# in order against a CIB file (pcs -f), with the agent installed where
# Pacemaker looks for it: /usr/lib/ocf/resource.d/qsup/guest, a temp dir
# bind-mounted over /usr/lib/ocf/resource.d in a mount namespace of this
# test's own (Pacemaker's OCF path is compiled in: no OCF_ROOT or
# OCF_RA_PATH moves it). pcs checks every parameter of resource create and
# update against the agent's meta-data; crm_verify -x validates the CIB,
# and crm_simulate (Pacemaker's scheduler, on the file) plays the steps:
#   - cluster setup: written with --corosync_conf (no node contacted),
#     with two_node: 1;
#   - host auth, cluster start: need pcsd and the nodes; not run;
#   - property set and resource create: crm_verify passes, the guest is
#     started on a node (both nodes simulated online, with quorum);
#   - resource move: pcs 0.11's move waits on a live cluster (it refuses
#     -f), so move-with-constraint makes the same constraint; the scheduler
#     plans a live migration (migrate_to on the source, migrate_from on the
#     target), not a stop and a start;
#   - resource clear: the constraint is gone;
#   - node standby: the scheduler migrates the guest off that node;
#     unstandby clears it;
#   - resource update (copy_storage, tunnel): accepted by the meta-data.
# Also: pcs refuses a parameter the meta-data lacks (the check is real),
# and pcs resource describe shows the parameters.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
agent=$src/contrib/ocf/qsup
readme=$src/contrib/ocf/README
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (a mount namespace)"; exit 77; }
for t in pcs cibadmin crm_verify crm_simulate unshare; do
	command -v "$t" >/dev/null || { echo "SKIP: no $t (apt-get install pcs pacemaker-cli-utils)"; exit 77; }
done
[ -f /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || { echo "SKIP: no resource-agents"; exit 77; }
if [ -z "${QSUP_PCS_TEST_INNER:-}" ]; then
	QSUP_PCS_TEST_INNER=1 exec unshare --mount sh "$0" "$@"
fi
dir=$(mktemp -d /tmp/qsup-pcs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mount --make-rprivate /
mkdir -p "$dir/resource.d/qsup"
install -m 0755 "$agent" "$dir/resource.d/qsup/guest"
mount --bind "$dir/resource.d" /usr/lib/ocf/resource.d
# The recipe's node names resolve (pcs cluster setup looks them up).
{ cat /etc/hosts; printf '10.233.0.1 node1\n10.233.0.2 node2\n'; } > "$dir/hosts"
mount --bind "$dir/hosts" /etc/hosts
# pcs keeps its own state under /var/lib/pcsd: a temp dir too.
mkdir -p "$dir/pcsd" /var/lib/pcsd
mount --bind "$dir/pcsd" /var/lib/pcsd

cib=$dir/cib.xml
cibadmin --empty > "$cib"
CIB_file=$cib cibadmin -o nodes -C -X '<node id="1" uname="node1"/>'
CIB_file=$cib cibadmin -o nodes -C -X '<node id="2" uname="node2"/>'
fail() { echo "FAIL: $*"; exit 1; }
# simulate [ARGS...]: the scheduler on the CIB (quorum, the actions
# "executed"); its output in $dir/sim.out, its resulting CIB in $cib.
simulate() {
	crm_simulate -x "$cib" -S -q true -O "$dir/next.xml" "$@" > "$dir/sim.out" 2>&1 ||
		{ cat "$dir/sim.out"; fail "crm_simulate"; }
	mv "$dir/next.xml" "$cib"
}
verify() { crm_verify -V -x "$cib" > "$dir/verify.out" 2>&1 || { cat "$dir/verify.out"; fail "crm_verify: $1"; }; }
where() { sed -n 's/.*web1.*Started \(node[12]\).*/\1/p' "$dir/sim.out" | tail -n 1; }

ran=''
# pcs ARGS...: the README's pcs, offline.
pcs() {
	echo "+ pcs $*"
	ran="$ran|$1 $2"
	case "$1 $2" in
	"host auth"|"cluster start")
		echo "  (not run: needs pcsd on live nodes)"
		return 0
		;;
	"cluster setup")
		command pcs "$@" --corosync_conf "$dir/corosync.conf"
		grep -q 'two_node: 1' "$dir/corosync.conf" || { cat "$dir/corosync.conf"; fail "no two_node: 1"; }
		grep -q 'name: node2' "$dir/corosync.conf" || fail "node2 not in corosync.conf"
		;;
	"resource move")
		shift 2
		command pcs -f "$cib" resource move-with-constraint "$@"
		from=$(where)
		simulate
		cat "$dir/sim.out"
		grep -q "Migrate *web1 *( *$from -> $2 *)" "$dir/sim.out" ||
			fail "resource move: no live migration $from -> $2 planned"
		grep -q "web1 *migrate_to on $from" "$dir/sim.out" &&
			grep -q "web1 *migrate_from on $2" "$dir/sim.out" ||
			fail "resource move: no migrate_to/migrate_from"
		[ "$(where)" = "$2" ] || fail "web1 on $(where) after the move, not $2"
		;;
	"resource clear")
		command pcs -f "$cib" "$@"
		command pcs -f "$cib" constraint > "$dir/cons.out"
		grep -q "Node:" "$dir/cons.out" && { cat "$dir/cons.out"; fail "a location constraint left"; }
		verify "$*"
		;;
	"node standby")
		from=$(where)
		command pcs -f "$cib" "$@"
		[ "$from" = "$3" ] || fail "standby of $3, but web1 is on $from: the recipe drains an idle node"
		simulate
		cat "$dir/sim.out"
		grep -q "Migrate *web1 *( *$3 -> " "$dir/sim.out" ||
			fail "standby $3: no live migration off $3 planned"
		[ -n "$(where)" ] && [ "$(where)" != "$3" ] || fail "web1 not moved off $3"
		;;
	"node unstandby")
		command pcs -f "$cib" "$@"
		grep -q 'name="standby" value="on"' "$cib" && fail "$3 still standby"
		verify "$*"
		;;
	"resource create")
		command pcs -f "$cib" "$@"
		verify "$*"
		simulate -u node1 -u node2
		[ -n "$(where)" ] || { cat "$dir/sim.out"; fail "web1 not started"; }
		echo "  web1 starts on $(where)"
		;;
	"resource update")
		command pcs -f "$cib" "$@"
		verify "$*"
		command pcs -f "$cib" resource config web1 > "$dir/config.out"
		shift 3
		for kv in "$@"; do
			grep -q "^ *$kv\$" "$dir/config.out" || { cat "$dir/config.out"; fail "$kv not set"; }
		done
		;;
	*)
		command pcs -f "$cib" "$@"
		verify "$*"
		;;
	esac
}

# The recipe: the indented pcs lines of the section, in order.
sed -n '/^A two-node cluster (pcs)/,/^With crmsh instead/p' "$readme" | awk '
	/^    pcs / {
		l = $0
		while (l ~ /\\$/) { sub(/\\$/, "", l); if ((getline n) <= 0) break; sub(/^ +/, " ", n); l = l n }
		sub(/ +#.*/, "", l); sub(/^ +/, "", l); print l
	}' > "$dir/recipe"
n=0
while IFS= read -r line; do
	eval "$line" < /dev/null
	n=$((n + 1))
done < "$dir/recipe"
for need in "cluster setup" "property set" "resource create" "resource move" "resource clear" \
	"node standby" "node unstandby" "resource update"; do
	case "$ran|" in *"|$need|"*) ;; *) fail "the recipe has no pcs $need" ;; esac
done
echo "ok: $n pcs commands of the README's recipe"

# The check is real: a parameter the meta-data lacks is refused, so is a
# bad action name; describe shows the new parameters.
if command pcs -f "$cib" resource create bad ocf:qsup:guest guest=bad targeturi=x > "$dir/bad.out" 2>&1; then
	fail "pcs accepted a parameter the agent does not have"
fi
grep -qi "targeturi" "$dir/bad.out" || { cat "$dir/bad.out"; fail "no word of the bad parameter"; }
command pcs resource describe ocf:qsup:guest > "$dir/describe.out" 2>&1
for p in guest socket target_uri copy_storage tunnel migration_timeout stop_timeout profile; do
	grep -q "^ *$p\b" "$dir/describe.out" || { cat "$dir/describe.out"; fail "describe lacks $p"; }
done
verify "the end"
echo ok
