#!/usr/bin/env bash
# A NAT lab on one machine (root; iproute2 and iptables): the layout the NAT tests build
# (crates/cairn-cli/tests/nat), to try Cairn behind home routers by hand, with your own timings.
#
#   scripts/nat-lab.sh up [--symmetric]   # build it (--symmetric: routers use --random-fully, no hole punching)
#   scripts/nat-lab.sh down               # delete it
#   scripts/nat-lab.sh uplink a down|up   # take home a's uplink down (a lid closed) or back up
#
#   "internet" 203.0.113.0/24: relay 203.0.113.1 (namespace nl-relay), public host 203.0.113.2 (nl-pub),
#   routers 203.0.113.11-13 (nl-ra, nl-rb, nl-rc) with homes 192.168.1-3.0/24 behind them, one host each
#   (192.168.N.2 in nl-ha, nl-hb, nl-hc). Run anything in a namespace with `ip netns exec <name> <command>`.
set -euo pipefail
P=nl-
homes=(a:1 b:2 c:3)

down() {
  for ns in net relay pub ra rb rc ha hb hc; do ip netns del "$P$ns" 2>/dev/null || true; done
}

up() {
  local symmetric=${1:-}
  down
  ip netns add ${P}net
  ip -n ${P}net link add br0 type bridge
  ip -n ${P}net link set br0 up
  for spec in relay:203.0.113.1 pub:203.0.113.2; do
    local name=${spec%%:*} addr=${spec#*:}
    ip netns add $P$name
    ip link add $P${name}o type veth peer name $P${name}i
    ip link set $P${name}o netns ${P}net
    ip -n ${P}net link set $P${name}o master br0 up
    ip link set $P${name}i netns $P$name
    ip -n $P$name addr add $addr/24 dev $P${name}i
    ip -n $P$name link set $P${name}i up
    ip -n $P$name link set lo up
  done
  for spec in "${homes[@]}"; do
    local h=${spec%%:*} i=${spec#*:}
    local rtr=${P}r$h host=${P}h$h wan=${P}w$h
    ip netns add $rtr
    ip netns add $host
    ip link add ${wan}o type veth peer name $wan
    ip link set ${wan}o netns ${P}net
    ip -n ${P}net link set ${wan}o master br0 up
    ip link set $wan netns $rtr
    ip -n $rtr addr add 203.0.113.1$i/24 dev $wan
    ip -n $rtr link set $wan up
    ip link add ${P}l${h}r type veth peer name ${P}l${h}h
    ip link set ${P}l${h}r netns $rtr
    ip link set ${P}l${h}h netns $host
    ip -n $rtr addr add 192.168.$i.1/24 dev ${P}l${h}r
    ip -n $rtr link set ${P}l${h}r up
    ip -n $rtr link set lo up
    ip -n $host addr add 192.168.$i.2/24 dev ${P}l${h}h
    ip -n $host link set ${P}l${h}h up
    ip -n $host link set lo up
    ip -n $host route add default via 192.168.$i.1
    ip netns exec $rtr sysctl -qw net.ipv4.ip_forward=1
    if [ "$symmetric" = --symmetric ]; then
      ip netns exec $rtr iptables -t nat -A POSTROUTING -o $wan -j MASQUERADE --random-fully
    else
      ip netns exec $rtr iptables -t nat -A POSTROUTING -o $wan -j MASQUERADE
    fi
    ip netns exec $rtr iptables -P FORWARD DROP
    ip netns exec $rtr iptables -A FORWARD ! -i $wan -j ACCEPT
    ip netns exec $rtr iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  done
  local cairn
  cairn="$(scripts/cargo.sh --profile-dir 2>/dev/null)/cairn"
  cat <<EOF
NAT lab up${symmetric:+ (symmetric NAT)}. For example, with cairn at $cairn:
  ip netns exec ${P}relay $cairn relay --listen /ip4/203.0.113.1/tcp/4001 --autonat-private-ips --print-addr --data-dir /tmp/nl/relay
  ip netns exec ${P}ha $cairn node --bootstrap <relay addr> --relay <relay addr> --autonat-private-ips --data-dir /tmp/nl/a
  ip netns exec ${P}hb $cairn node --bootstrap <relay addr> --relay <relay addr> --autonat-private-ips --data-dir /tmp/nl/b
  ip netns exec ${P}hc $cairn prove --network --bootstrap <relay addr> --relay <relay addr> --autonat-private-ips --po2 14
  ip netns exec ${P}ha $cairn node status --data-dir /tmp/nl/a
  scripts/nat-lab.sh uplink a down; sleep 60; scripts/nat-lab.sh uplink a up
EOF
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down; echo "NAT lab deleted" ;;
  uplink) ip -n ${P}r$2 link set ${P}w$2 "$3" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
