#!/usr/bin/env bash
# netlab segments: an Ethernet LAN and a routed segment, built from named
# network namespaces that exist only inside the lab. Run by scripts/netlab
# (inside()), in the lab's own network + mount namespace; it refuses to run
# anywhere else.
#
#   lab (the namespace the command runs in)
#     lan0  bridge 02:1a:b0:00:00:01  198.18.0.1/20 198.19.0.1/16 fd00:1ab:10::1/64
#       ├─ lan-a0 ── lan-a eth0 00:16:3e:1a:b0:0a (Xensource OUI)
#       │            198.18.0.2-253, .5.5, .9.9, .12.34 /20; 198.19.0.2-101 /16; fd00:1ab:10::a
#       │            firewall: echo requests to 198.18.0.240-253 dropped
#       └─ lan-b0 ── lan-b eth0 02:1a:b0:00:00:0b (locally administered)
#                    198.18.0.254 198.18.15.254 /20; 198.19.255.254/16; fd00:1ab:10::b
#                    firewall: all echo requests (v4 and v6) and TCP SYNs dropped
#     rt0   198.18.32.1/30 ── router eth0 198.18.32.2/30, forwarding, no ICMP rate limit
#                             router eth1 198.18.36.1/22 ── lan-c eth0 02:1a:b0:00:00:0c:
#                             every even address of 198.18.36.0/22 (.36.2 ... .39.254,
#                             511); odd ones but the router's .36.1 are dead: ICMP
#                             host unreachable from 198.18.32.2 after ~3 s
#     route 198.18.36.0/22 via 198.18.32.2; no default route anywhere in the lab.
#     far0  198.18.40.1/30 ── dnsfar eth0 198.18.40.2/30: the far DNS resolver, 10 ms
#           each way. Made by dns.sh with the resolvers, not here: a TUN pair relayed
#           by dns/farlink.py (sch_netem is not in every kernel).
#
# Only 198.18.0.0/15 (RFC 2544 benchmarking) and fd00:1ab:10::/64 are used. Taken:
# 198.18.0.0/20 and 198.19.0.0/16 (lan0), 198.18.32.0/30 (rt0), 198.18.36.0/22
# (lan-c), 198.18.40.0/30 (far0).
set -euo pipefail

die() { echo "netlab segments: $*" >&2; exit 2; }

# Never shadow the host's /run/netns or add links to the host's namespace.
# (netlab records the namespaces it started from: PID 1's may not be readable.)
[[ -n ${NETLAB_HOST_NET:-} && -n ${NETLAB_HOST_MNT:-} ]] || die "run by scripts/netlab only"
own_net=$(readlink /proc/self/ns/net) && own_mnt=$(readlink /proc/self/ns/mnt) || die "cannot read namespaces"
[[ $own_net != "$NETLAB_HOST_NET" ]] || die "not in a private network namespace"
[[ $own_mnt != "$NETLAB_HOST_MNT" ]] || die "not in a private mount namespace"

# Named namespaces on a tmpfs of the lab's private mount namespace: they
# vanish with the lab, and nothing is ever bound on the host's /run/netns
# (only the empty directory is created there if it is missing).
mkdir -p /run/netns
mount -t tmpfs -o mode=0755,size=64k netlab-netns /run/netns

peers=(lan-a lan-b router lan-c)
for ns in "${peers[@]}"; do echo "netns add $ns"; done | ip -batch -

# No duplicate address detection anywhere, set before any interface exists,
# so link-local and global IPv6 addresses are usable at once.
nodad=(net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0)
sysctl -qw "${nodad[@]}"
for ns in "${peers[@]}"; do
  extra=()
  case $ns in
    lan-a) extra=(net.ipv6.icmp.echo_ignore_multicast=0) ;;
    # Every dead address gets its host unreachable, however many are probed at
    # once: no per-destination limit, and a global limit (per namespace) far
    # above a sweep. The burst matters most: the unreachables of a sweep all
    # fire together when ARP gives up, and the default burst of 50 drops the rest.
    router) extra=(net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
                   net.ipv4.icmp_msgs_per_sec=100000 net.ipv4.icmp_msgs_burst=100000) ;;
  esac
  ip netns exec "$ns" sysctl -qw "${nodad[@]}" "${extra[@]}"
  ip -n "$ns" link set lo up
done

ip -batch - <<'EOF'
link add lan0 address 02:1a:b0:00:00:01 type bridge forward_delay 0 stp_state 0
addr add 198.18.0.1/20 dev lan0
addr add 198.19.0.1/16 dev lan0
addr add fd00:1ab:10::1/64 dev lan0 nodad
link add lan-a0 type veth peer name eth0 address 00:16:3e:1a:b0:0a netns lan-a
link add lan-b0 type veth peer name eth0 address 02:1a:b0:00:00:0b netns lan-b
link set lan-a0 master lan0 up
link set lan-b0 master lan0 up
link set lan0 up
link add rt0 type veth peer name eth0 netns router
addr add 198.18.32.1/30 dev rt0
link set rt0 up
EOF

{
  for i in $(seq 2 253); do echo "addr add 198.18.0.$i/20 dev eth0"; done
  for a in 198.18.5.5 198.18.9.9 198.18.12.34; do echo "addr add $a/20 dev eth0"; done
  for i in $(seq 2 101); do echo "addr add 198.19.0.$i/16 dev eth0"; done
  echo "addr add fd00:1ab:10::a/64 dev eth0 nodad"
  echo "link set eth0 up"
} | ip -n lan-a -batch -

ip -n lan-b -batch - <<'EOF'
addr add 198.18.0.254/20 dev eth0
addr add 198.18.15.254/20 dev eth0
addr add 198.19.255.254/16 dev eth0
addr add fd00:1ab:10::b/64 dev eth0 nodad
link set eth0 up
EOF

# lan-c's live addresses: every even one of 198.18.36.0/22 but the network's.
lan_c=()
for o3 in 36 37 38 39; do
  for o4 in $(seq 0 2 254); do
    [[ $o3.$o4 == 36.0 ]] || lan_c+=("198.18.$o3.$o4")
  done
done

# The router knows lan-c's live addresses statically: the kernel's neighbour
# table holds at most gc_thresh3 (1024) dynamic entries for the whole machine
# (host and every namespace together, settable only on the host), and 511
# live plus 512 dead entries would overflow it when the /22 is swept. Dead
# addresses still go through ARP and fail after about 3 s.
{
  echo "addr add 198.18.32.2/30 dev eth0"
  echo "link set eth0 up"
  echo "link add eth1 type veth peer name eth0 address 02:1a:b0:00:00:0c netns lan-c"
  echo "addr add 198.18.36.1/22 dev eth1"
  echo "link set eth1 up"
  for a in "${lan_c[@]}"; do echo "neigh add $a lladdr 02:1a:b0:00:00:0c dev eth1 nud permanent"; done
} | ip -n router -batch -

{
  for a in "${lan_c[@]}"; do echo "addr add $a/22 dev eth0"; done
  echo "link set eth0 up"
  echo "route add default via 198.18.36.1"
} | ip -n lan-c -batch -

ip route add 198.18.36.0/22 via 198.18.32.2

ip netns exec lan-a nft -f - <<'EOF'
table inet netlab {
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr 198.18.0.240-198.18.0.253 icmp type echo-request drop
  }
}
EOF

# Like a default Windows firewall: no pings, no connections, but the host
# still answers ARP and neighbour solicitations.
ip netns exec lan-b nft -f - <<'EOF'
table inet netlab {
  chain input {
    type filter hook input priority 0; policy accept;
    icmp type echo-request drop
    icmpv6 type echo-request drop
    tcp flags & (syn | ack) == syn drop
  }
}
EOF

# Readiness: the LAN and the routed segment both answer (at most ~2 s).
for target in 198.18.0.2 198.18.36.2; do
  for try in $(seq 8); do
    ping -nqc1 -W0.2 "$target" >/dev/null 2>&1 && break
    [[ $try -lt 8 ]] || die "no answer from $target: the lab network is not up" \
      "(if dmesg says 'neighbor table overflow', the kernel-wide neighbour table is full:" \
      "host and namespaces share net.ipv4.neigh.default.gc_thresh3; wait for old labs to be freed)"
    sleep 0.05
  done
done
# Tests start from an empty neighbour cache.
ip neigh flush dev lan0
ip neigh flush dev rt0
