# shellcheck shell=bash
# Sourced by scripts/bootstrap (uses its STATE, *_PORT, log, die, stop_pidfile, with_lock):
# extra Docker engines beside the first, for fleet tests. Each has its own data root, exec
# root, socket, pid file, containerd namespaces, config file and bridge (the recipe in
# DESIGN.md, "The test bed"). Never `--bridge none`: it deletes the first engine's docker0.
# Containers on that bridge get outbound NAT and forwarding from rules of ours (engine_nat);
# networks the engine creates itself get none (--iptables=false), and with the FORWARD policy
# DROP their containers cannot reach each other.
#   $STATE/engines/NAME/{daemon.json,data/,index}   $STATE/run/engine-NAME.pid
#   /run/ci-toolkit-engines/NAME/{docker.sock,exec/} $STATE/log/engine-NAME.log
# Engine number N (1-99) gives its bridge 10.213.N.1/24, outside Docker's default pools.
# No "default-address-pools" in an extra engine's config: when dockerd (26) restarts on a data
# root that holds a "bridge" network and has pools configured, it deletes the link named
# docker0, whichever bridge it was given. Without pools, user networks of an extra engine come
# from the default pools, and dockerd skips a subnet another engine's bridge already routes.

ENGINES_RUN=/run/ci-toolkit-engines

engine_sock() { echo "$ENGINES_RUN/$1/docker.sock"; }
engine_pidfile() { echo "$STATE/run/engine-$1.pid"; }
engine_docker() { local name=$1; shift; docker -H "unix://$(engine_sock "$name")" "$@"; }
engine_up() { timeout 10 docker -H "unix://$(engine_sock "$1")" version >/dev/null 2>&1; }

check_engine_name() {  # the name is also the bridge's interface name (at most 15 characters)
  [[ $1 =~ ^[a-z][a-z0-9_-]{0,14}$ ]] || usage "engine name '$1': lowercase letters, digits, - and _, at most 15"
  case $1 in
    docker*|br-*|veth*|eth*|lo|bridge|host|none|default) usage "engine name '$1' is reserved" ;;
  esac
}

engine_index() {  # name: its number, chosen once and kept
  local dir="$STATE/engines/$1" n
  if [ -s "$dir/index" ]; then cat "$dir/index"; return 0; fi
  for n in $(seq 1 99); do
    grep -qsx "$n" "$STATE"/engines/*/index && continue
    ip -4 -o addr show | grep -q "inet 10\.213\.$n\." && continue
    echo "$n" >"$dir/index"
    echo "$n"
    return 0
  done
  die "no free engine number (1-99) left under $STATE/engines"
}

engine_config() {  # snapshotter(true|false): the engine's daemon.json
  cat <<JSON
{
  "features": {"containerd-snapshotter": $1},
  "registry-mirrors": ["http://127.0.0.1:$MIRROR_PORT"],
  "insecure-registries": ["127.0.0.1:$PUSH_PORT", "127.0.0.1:$HUB_PORT", "127.0.0.1:$MIRROR_PORT"]
}
JSON
}

ensure_bridge() {  # name index
  local name=$1 addr="10.213.$2.1/24"
  if ! ip link show "$name" >/dev/null 2>&1; then
    ip link add "$name" type bridge
  elif ! ip -d link show "$name" | grep -qw bridge; then
    die "interface $name exists and is not a bridge: pick another engine name"
  fi
  ip -4 -o addr show dev "$name" | grep -q " $addr " || ip addr add "$addr" dev "$name"
  ip link set "$name" up
}

iptables_rule() {  # add|del table chain rule...: idempotent either way
  local op=$1 table=$2 chain=$3
  shift 3
  if iptables -t "$table" -C "$chain" "$@" 2>/dev/null; then
    [ "$op" = add ] || iptables -t "$table" -D "$chain" "$@"
  else
    [ "$op" = del ] || iptables -t "$table" -A "$chain" "$@"
  fi
}

engine_nat() {  # add|del name index: what dockerd gives docker0 (outbound NAT, forwarding), for
  # the engine's own bridge; with --iptables=false the engine adds none, and the first engine's
  # FORWARD policy is DROP. Tagged with a comment, so removal takes exactly these rules.
  local op=$1 name=$2 tag=(-m comment --comment "ci-toolkit-engine-$2")
  command -v iptables >/dev/null 2>&1 || return 0
  iptables_rule "$op" nat POSTROUTING -s "10.213.$3.0/24" ! -o "$name" "${tag[@]}" -j MASQUERADE
  iptables_rule "$op" filter FORWARD -i "$name" "${tag[@]}" -j ACCEPT
  iptables_rule "$op" filter FORWARD -o "$name" -m conntrack --ctstate RELATED,ESTABLISHED "${tag[@]}" -j ACCEPT
}

docker0_state() {  # "ADDRESS/PREFIX MAC" of the first engine's bridge, or nothing
  local addr mac
  addr=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{print $4; exit}')
  mac=$(cat /sys/class/net/docker0/address 2>/dev/null) || return 0
  [ -z "$addr" ] || echo "$addr $mac"
}

keep_docker0() {  # name "addr mac": put the first engine's bridge back if NAME took it
  local name=$1 addr=${2% *} mac=${2#* }
  [ -n "$2" ] && ! ip link show docker0 >/dev/null 2>&1 || return 0
  log "warning: engine $name removed docker0; recreating it ($addr $mac) for the first engine"
  # The same MAC, set explicitly: a bridge without one takes its ports' MACs as they come and
  # go, and the first engine's containers then hold a stale ARP entry for their gateway.
  ip link add docker0 address "$mac" type bridge
  ip addr add "$addr" dev docker0
  ip link set docker0 up
}

start_extra_engine() {  # name
  local name=$1 dir="$STATE/engines/$1" sock docker0
  sock=$(engine_sock "$name")
  docker0=$(docker0_state)
  mkdir -p "$ENGINES_RUN/$name/exec" "$dir/data"
  log "starting engine $name"
  nohup dockerd \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/data" \
    --exec-root "$ENGINES_RUN/$name/exec" \
    -H "unix://$sock" \
    --pidfile "$(engine_pidfile "$name")" \
    --containerd-namespace "ci-toolkit-$name" \
    --containerd-plugins-namespace "ci-toolkit-$name-plugins" \
    --bridge "$name" --iptables=false \
    >"$STATE/log/engine-$name.log" 2>&1 9>&- &  # 9: the engines lock stays with bootstrap
  for _ in $(seq 120); do engine_up "$name" && { keep_docker0 "$name" "$docker0"; return 0; }; sleep 0.5; done
  keep_docker0 "$name" "$docker0"
  tail -20 "$STATE/log/engine-$name.log" >&2
  die "engine $name did not start; see $STATE/log/engine-$name.log"
}

up_extra_engine() {  # name snapshotter(true|false)
  local name=$1 dir="$STATE/engines/$1" index root
  mkdir -p "$dir"
  index=$(engine_index "$name")
  engine_config "$2" >"$dir/daemon.json.new"
  if cmp -s "$dir/daemon.json.new" "$dir/daemon.json"; then
    rm "$dir/daemon.json.new"
  else
    mv "$dir/daemon.json.new" "$dir/daemon.json"
    if engine_up "$name"; then log "engine $name: config changed, restarting it"; stop_extra_engine "$name"; fi
  fi
  if ! engine_up "$name"; then
    ensure_bridge "$name" "$index"
    start_extra_engine "$name"
  fi
  engine_nat add "$name" "$index"
  root=$(engine_docker "$name" info --format '{{.DockerRootDir}}')
  [ "$root" = "$dir/data" ] || die "the engine on $(engine_sock "$name") has data root $root, not $dir/data"
}

ensure_extra_engine() {  # name snapshotter(true|false)
  with_lock engines up_extra_engine "$@"
}

stop_extra_engine() {  # name: the engine and its bridge; nothing of the first engine
  local name=$1 docker0
  [ -d "$STATE/engines/$name" ] || { log "engine $name: not set up here"; return 0; }
  docker0=$(docker0_state)
  stop_pidfile "$(engine_pidfile "$name")" 300  # dockerd stops its containers first: up to a minute
  keep_docker0 "$name" "$docker0"
  ! engine_up "$name" || die "engine $name still answers on $(engine_sock "$name")"
  if ip -d link show "$name" 2>/dev/null | grep -qw bridge; then ip link del "$name"; fi
  [ ! -s "$STATE/engines/$name/index" ] || engine_nat del "$name" "$(cat "$STATE/engines/$name/index")"
  rm -f "$(engine_sock "$name")"
  log "engine $name stopped"
}

extra_engines() {  # names of the engines bootstrap has set up
  local d
  for d in "$STATE"/engines/*/; do [ -d "$d" ] && basename "$d"; done
  return 0
}
