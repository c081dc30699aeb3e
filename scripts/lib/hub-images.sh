# shellcheck shell=bash
# Sourced by scripts/bootstrap (uses its STATE, *_PORT, log, die, need_pkgs, with_lock):
# extra images in the "hub" registry, built offline from Debian packages, each pushed once.
#   ensure_debian_image    library/debian:trixie    debootstrap --variant=minbase, docker import;
#                          the rootfs tarball stays in $STATE/cache for a rebuild after data loss
#   ensure_registry_image  library/registry:2,latest Debian's docker-registry on busybox

hub_has() {  # repo tag: the hub registry serves this manifest
  curl -fsS -o /dev/null \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:$HUB_PORT/v2/$1/manifests/$2" 2>/dev/null
}

debian_mirror() {  # the Debian archive apt uses here (CI_TOOLKIT_DEBIAN_MIRROR overrides)
  if [ -n "${CI_TOOLKIT_DEBIAN_MIRROR:-}" ]; then echo "$CI_TOOLKIT_DEBIAN_MIRROR"; return 0; fi
  python3 - <<'PY'
import glob, re
DEBIAN = {"trixie", "bookworm", "bullseye", "forky", "sid", "stable", "testing", "unstable"}
entries = []  # (uri, suites)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], {words[2]}))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    try:
        stanzas = open(path).read().split("\n\n")
    except OSError:
        continue
    for stanza in stanzas:
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            entries.extend((uri, set(fields.get("suites", []))) for uri in fields.get("uris", []))
debian = [(u, s) for u, s in entries if s & DEBIAN]
best = [u for u, s in debian if "trixie" in s] or [u for u, _ in debian]
print(best[0].rstrip("/") if best else "http://deb.debian.org/debian")
PY
}

remove_rootfs() {  # dir: a debootstrap target, with whatever a killed run left mounted in it
  local dir=$1
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" || true
  done
  rm -rf --one-file-system "$dir"
}

debian_rootfs() {  # tarball arch: debootstrap trixie minbase into a temporary dir, tar it
  local tarball=$1 arch=$2 mirror dir old started=$SECONDS
  need_pkgs debootstrap
  mirror=$(debian_mirror)
  mkdir -p "$(dirname "$tarball")"
  for old in "$STATE"/cache/debootstrap.*; do [ -d "$old" ] && remove_rootfs "$old"; done
  dir=$(mktemp -d "$STATE/cache/debootstrap.XXXXXX")
  log "debootstrap --variant=minbase trixie from $mirror (a minute or so; log: $STATE/log/debootstrap.log)"
  if ! debootstrap --variant=minbase --arch="$arch" trixie "$dir" "$mirror" >"$STATE/log/debootstrap.log" 2>&1; then
    tail -20 "$STATE/log/debootstrap.log" >&2
    remove_rootfs "$dir"
    die "debootstrap failed; see $STATE/log/debootstrap.log"
  fi
  # As Debian's official images: no host files, no package lists or downloaded packages.
  : >"$dir/etc/resolv.conf"
  : >"$dir/etc/hostname"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin
  tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -C "$dir" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  remove_rootfs "$dir"
  log "rootfs cached in $tarball ($((SECONDS - started))s)"
}

build_debian_image() {  # for this machine's architecture only
  local ref=$1 arch tarball
  hub_has library/debian trixie && return 0  # another bootstrap pushed it while we waited
  arch=$(dpkg --print-architecture)
  tarball="$STATE/cache/debian-trixie-$arch.tar"
  if [ -s "$tarball" ]; then log "using the cached rootfs $tarball"; else debian_rootfs "$tarball" "$arch"; fi
  log "importing and pushing $ref"
  docker import --platform "linux/$arch" --change 'CMD ["bash"]' - "$ref" <"$tarball" >/dev/null
  docker push "$ref" >"$STATE/log/debian-push.log" 2>&1 \
    || { tail -5 "$STATE/log/debian-push.log" >&2; die "could not push $ref"; }
}

ensure_debian_image() {
  local ref="127.0.0.1:$HUB_PORT/library/debian:trixie"
  if hub_has library/debian trixie; then log "$ref already present"; return 0; fi
  with_lock debian build_debian_image "$ref"
}

registry_context() {  # dir: Debian's docker-registry with the libraries it links, on busybox
  local ctx=$1 bin lib
  bin=$(command -v docker-registry) || die "docker-registry is not installed"
  mkdir -p "$ctx/rootfs"
  cp -L "$bin" "$ctx/registry"
  # A dynamic binary takes its loader and libraries along (busybox has no libc); a static one none.
  for lib in $(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
  cat >"$ctx/config.yml" <<'YML'
version: 0.1
log: {fields: {service: registry}}
storage: {cache: {blobdescriptor: inmemory}, filesystem: {rootdirectory: /var/lib/registry}}
http: {addr: "0.0.0.0:5000", headers: {X-Content-Type-Options: [nosniff]}}
health: {storagedriver: {enabled: true, interval: 10s, threshold: 3}}
YML
  cat >"$ctx/entrypoint.sh" <<'SH'
#!/bin/sh
# As the upstream image: a config path or a registry subcommand runs the registry.
set -e
case "$1" in
  *.yaml|*.yml) set -- registry serve "$@" ;;
  serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
SH
  chmod 755 "$ctx/entrypoint.sh"
  cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY rootfs/ /
COPY registry /bin/registry
COPY config.yml /etc/docker/registry/config.yml
COPY entrypoint.sh /entrypoint.sh
RUN ["/bin/registry", "--version"]
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/entrypoint.sh"]
CMD ["/etc/docker/registry/config.yml"]
DF
}

verify_registry_image() {  # ref: a container of it answers /v2/ on its published port
  local ref=$1 cid port ok=1
  cid=$(docker run -d -q -p 127.0.0.1:0:5000 "$ref") || die "could not start $ref"
  port=$(docker port "$cid" 5000/tcp | head -1)
  for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://${port}/v2/" 2>/dev/null && { ok=0; break; }
    sleep 0.2
  done
  [ $ok = 0 ] || docker logs "$cid" 2>&1 | tail -5 >&2
  docker rm -f "$cid" >/dev/null
  [ $ok = 0 ] || die "a container of $ref did not answer /v2/"
}

build_registry_image() {
  local repo="127.0.0.1:$HUB_PORT/library/registry" ctx
  hub_has library/registry 2 && hub_has library/registry latest && return 0
  log "building $repo:2 from Debian's docker-registry"
  ctx=$(mktemp -d)
  registry_context "$ctx"
  docker buildx build --builder default --platform linux/amd64 --provenance=false --sbom=false \
    -t "$repo:2" -t "$repo:latest" --push "$ctx" >"$STATE/log/registry-build.log" 2>&1 \
    || { tail -20 "$STATE/log/registry-build.log" >&2; rm -rf "$ctx"; die "could not build $repo:2"; }
  rm -rf "$ctx"
  verify_registry_image "127.0.0.1:$MIRROR_PORT/library/registry:2"
}

ensure_registry_image() {
  if hub_has library/registry 2 && hub_has library/registry latest; then
    log "127.0.0.1:$HUB_PORT/library/registry:2 already present"
    return 0
  fi
  with_lock registry build_registry_image
}
