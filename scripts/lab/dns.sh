#!/usr/bin/env bash
# netlab DNS servers: real ones, for the DNS client's tests. Run by scripts/netlab
# (inside()) as `dns.sh RUN` in the lab's own network + mount namespace, after
# segments.sh; it refuses to run anywhere else. Every daemon writes its pid to
# RUN/*.pid (netlab stops them all on exit); RUN/dns.env gets the NETLAB_DNS_*
# variable of each server that runs. A server whose software is not installed is
# left out with its variable (the tests that need it skip); one that is installed
# but fails to start fails the lab.
#
#   127.0.0.2:53    Knot (knotd), authoritative: auth.test, 2.0.192.in-addr.arpa,
#                   0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa, signed.test and
#                   bogus.test (both signed by knotd at start, keys made for the run)
#                   NETLAB_DNS_AUTH
#   127.0.0.4:53    a second knotd: auth.test (its second NS) and sub.auth.test,
#                   which 127.0.0.2 answers with a referral here
#   127.0.0.3:53    Unbound, validating resolver for those zones only (all else is
#             :853  REFUSED at once); trust anchors: the DS of signed.test's key, and
#                   a DS that matches no key for bogus.test (SERVFAIL); DNS over TLS
#                   on 853, certificate for resolver.lab.test and 127.0.0.3 signed by
#                   a CA made for the run (RUN/ca.pem)
#                   NETLAB_DNS_RESOLVER, NETLAB_DNS_CA
#   198.18.40.2:53  the far resolver: a second Unbound, in namespace dnsfar, a 20 ms
#                   round trip away over far0 (198.18.40.1/30, farlink.py), forwarding
#                   to the first, which listens on 198.18.40.1 too; same trust anchors
#                   NETLAB_DNS_FAR
#   127.0.0.6:53    never answers: dns.nft (loaded by netlab) drops UDP and TCP to it
#                   NETLAB_DNS_SILENT
#   127.0.0.7:53    answers SERVFAIL to every query, at once (servfail.py)
#                   NETLAB_DNS_SERVFAIL
#
# Needs: knotd, knotc, keymgr (Debian knot) for Knot; unbound and openssl for the
# resolvers, which need Knot; python3 for the SERVFAIL server and the far link.
# Zones and configuration templates: dns/.
set -euo pipefail

started=()  # the pid files of the daemons started so far
# Before failing, let every daemon started so far write its pid file (the helpers in
# the background and the daemons that fork), or netlab could not stop it.
die() {
  echo "netlab dns: $*" >&2
  wait
  local file
  for file in "${started[@]}"; do
    for _ in $(seq 100); do [[ -s $file ]] && break; sleep 0.01; done
  done
  exit 2
}

[[ $# == 1 && -d $1 ]] || die "usage: dns.sh RUN (run by scripts/netlab only)"
run=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dns="$here/dns"

# Like segments.sh: never start servers or add links in the host's namespaces.
[[ -n ${NETLAB_HOST_NET:-} && -n ${NETLAB_HOST_MNT:-} ]] || die "run by scripts/netlab only"
own_net=$(readlink /proc/self/ns/net) || die "cannot read namespaces"
own_mnt=$(readlink /proc/self/ns/mnt) || die "cannot read namespaces"
[[ $own_net != "$NETLAB_HOST_NET" ]] || die "not in a private network namespace"
[[ $own_mnt != "$NETLAB_HOST_MNT" ]] || die "not in a private mount namespace"

has() { command -v "$1" >/dev/null 2>&1; }
# The distribution's Python: a python3 found on PATH may be a shim (pyenv) that costs 60 ms.
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3 || true)
knot='' resolver='' far=''
has knotd && has knotc && has keymgr && knot=1
[[ -n $knot ]] && has unbound && has openssl && resolver=1
[[ -n $resolver && -n $python ]] && far=1

exports=()
far_interface=
# A configuration template from dns/, filled in for this run.
fill() {
  sed -e "s|@RUN@|$run|g" -e "s|@ZONES@|$dns/zones|g" -e "s|@HERE@|$dns|g" \
    -e "s|@FAR@|$far_interface|g" "$dns/$1" >"$run/$1"
}
# Daemons write their pid file after they fork: wait for it, so that netlab can stop
# them (or say what the daemon's log says).
wait_for_pid_file() {
  for _ in $(seq 200); do
    [[ -s $1 ]] && return
    sleep 0.01
  done
  die "no pid file $1 after 2 s${2:+: $(tail -n3 "$2" 2>/dev/null)}"
}
# Whether every zone of the knotd with this configuration is loaded (and signed).
knot_loaded() {
  local status
  status=$(knotc -c "$1" zone-status 2>/dev/null) || return 1
  [[ -n $status && $status != *"serial: -"* ]]
}

# The slow starters first, in the background: Python (SERVFAIL server, far link),
# and openssl (the lab CA and the resolver's certificate).
if [[ -n $python ]]; then
  started+=("$run/servfail.pid")
  "$python" -I -S "$dns/servfail.py" 127.0.0.7 "$run/servfail.pid" &
  servfail=$!
fi
if [[ -n $far ]]; then
  started+=("$run/farlink.pid")
  "$python" -I -S "$dns/farlink.py" far0 farpeer 10 198.18.40.1 "$run/farlink.pid" &
  farlink=$!
fi
if [[ -n $resolver ]]; then
  {
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2)
    openssl req -x509 "${ec[@]}" -keyout "$run/ca.key" -out "$run/ca.pem" -subj "/CN=netlab DNS lab CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -x509 -CA "$run/ca.pem" -CAkey "$run/ca.key" "${ec[@]}" \
      -keyout "$run/resolver.key" -out "$run/resolver.pem" -subj "/CN=resolver.lab.test" \
      -addext "subjectAltName=DNS:resolver.lab.test,IP:127.0.0.3" \
      -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
      -addext "extendedKeyUsage=serverAuth"
  } 2>"$run/openssl.log" &
  certs=$!
fi

if [[ -n $knot ]]; then
  mkdir -p "$run/knot" "$run/knot-sub"
  fill knot.conf
  fill knot-sub.conf
  started+=("$run/knotd.pid" "$run/knotd-sub.pid")
  knotd -d -c "$run/knot.conf"
  knotd -d -c "$run/knot-sub.conf"
  wait_for_pid_file "$run/knotd.pid" "$run/knot/knotd.log"
  wait_for_pid_file "$run/knotd-sub.pid" "$run/knot-sub/knotd.log"
fi

if [[ -n $far ]]; then
  wait "$farlink" || die "farlink.py could not make the far link's TUN devices (is /dev/net/tun there?)"
  # The far end goes into its own namespace (on the lab's private /run/netns, see segments.sh).
  ip -batch - <<'EOF'
netns add dnsfar
link set farpeer netns dnsfar
addr add 198.18.40.1/30 dev far0
link set far0 up
EOF
  ip -n dnsfar -batch - <<'EOF'
link set lo up
link set farpeer name eth0
addr add 198.18.40.2/30 dev eth0
link set eth0 up
EOF
  # A burst of 1,000 queries must fit in the links' queues (500 packets by default).
  # Each end knows the other statically: even a TUN device needs a neighbour entry,
  # and the kernel-wide table may be full when a test first sends (see segments.sh).
  ip link set far0 txqueuelen 10000
  ip neigh add 198.18.40.2 dev far0 nud permanent
  ip -n dnsfar link set eth0 txqueuelen 10000
  ip -n dnsfar neigh add 198.18.40.1 dev eth0 nud permanent
  far_interface="interface: 198.18.40.1@53"
fi

if [[ -n $knot ]]; then
  deadline=$((${EPOCHREALTIME/[.,]/} + 3000000))  # in 3 s, in microseconds
  until knot_loaded "$run/knot.conf" && knot_loaded "$run/knot-sub.conf"; do
    ((${EPOCHREALTIME/[.,]/} < deadline)) ||
      die "knotd did not load its zones in 3 s: $(grep -h error "$run"/knot*/knotd.log | head -n3)"
    sleep 0.01
  done
  exports+=(NETLAB_DNS_AUTH=127.0.0.2)
fi

if [[ -n $resolver ]]; then
  # Trust anchors from the keys knotd made: signed.test's DS as it is; bogus.test's
  # with a digest of no key (all zeros), so that its chain of trust is broken.
  zeros=$(printf '0%.0s' $(seq 64))
  {
    keymgr -c "$run/knot.conf" signed.test ds
    keymgr -c "$run/knot.conf" bogus.test ds | sed "s/ [0-9a-fA-F]*\$/ $zeros/"
  } | awk '$2 == "DS" && $5 == 2' >"$run/trust-anchors"
  [[ $(wc -l <"$run/trust-anchors") == 2 ]] || die "keymgr gave no DS for signed.test and bogus.test"
  wait "$certs" || die "openssl could not make the lab CA: $(tail -n3 "$run/openssl.log")"
  fill unbound.conf
  started+=("$run/unbound.pid")
  unbound -c "$run/unbound.conf" || die "unbound did not start: $(tail -n3 "$run/unbound.log" 2>/dev/null)"
  if [[ -n $far ]]; then
    fill far-unbound.conf
    started+=("$run/far-unbound.pid")
    nsenter --net=/run/netns/dnsfar unbound -c "$run/far-unbound.conf" ||
      die "the far unbound did not start: $(tail -n3 "$run/far-unbound.log" 2>/dev/null)"
  fi
  wait_for_pid_file "$run/unbound.pid" "$run/unbound.log"
  exports+=(NETLAB_DNS_RESOLVER=127.0.0.3 "NETLAB_DNS_CA=$run/ca.pem")
  if [[ -n $far ]]; then
    wait_for_pid_file "$run/far-unbound.pid" "$run/far-unbound.log"
    exports+=(NETLAB_DNS_FAR=198.18.40.2)
  fi
fi

exports+=(NETLAB_DNS_SILENT=127.0.0.6)
if [[ -n $python ]]; then
  wait "$servfail" || die "servfail.py could not listen on 127.0.0.7:53"
  exports+=(NETLAB_DNS_SERVFAIL=127.0.0.7)
fi
printf 'export %q\n' "${exports[@]}" >"$run/dns.env"
