#!/bin/sh
# deps.sh - installs the Debian 12 packages the hub needs to build, test and
# run (as root, or through sudo). Safe to run again: apt-get skips what is
# already installed. While apt-get installs, a /usr/sbin/policy-rc.d that
# exits 101 stops the packages' postinst from starting their services
# (postgresql, redis-server, nginx): the tests start servers of their own.
# It is put there only when there is none, and removed afterwards, also when
# the install fails or is interrupted; an existing one is left as it is.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config
libevent-dev libcurl4-openssl-dev libjansson-dev libssl-dev libltdl-dev
libpq-dev libhiredis-dev libsqlite3-dev libcmocka-dev
postgresql redis-server nginx openssl valgrind curl ca-certificates procps"

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK="# hub scripts/deps.sh: no service starts while it installs packages"
policy_ours=

# Removes the policy-rc.d this run made (recognised by its marker line), and
# nothing else.
policy_remove() {
	if [ -n "$policy_ours" ]; then
		policy_ours=
		# shellcheck disable=SC2016 # expanded by the inner sh
		$SUDO sh -c 'grep -qxF "$2" "$1" 2>/dev/null && rm -f "$1"' sh "$POLICY_RC" "$POLICY_MARK" || true
	fi
}

if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
	trap policy_remove EXIT
	trap 'policy_remove; exit 129' HUP
	trap 'policy_remove; exit 130' INT
	trap 'policy_remove; exit 143' TERM
	# noclobber: created only when absent, even if one appears meanwhile.
	# shellcheck disable=SC2016 # expanded by the inner sh
	if $SUDO sh -c 'set -C; printf "#!/bin/sh\n%s\nexit 101\n" "$2" >"$1"' sh "$POLICY_RC" "$POLICY_MARK" \
		2>/dev/null; then
		policy_ours=1
		$SUDO chmod 755 "$POLICY_RC"
	else
		echo "deps: keeping the existing $POLICY_RC (services may start as it decides)"
	fi
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
	policy_remove
	trap - EXIT HUP INT TERM
fi
