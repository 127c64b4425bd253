#!/usr/bin/env bash
# Build Kubernetes 1.20.2 (kube-apiserver, kubectl, kube-controller-manager, kube-scheduler,
# kubelet) from Debian bookworm's source package, offline, plus a static pause binary.
# Cached: a second run with the binaries present returns at once. ~8+ min on 2 cores.
# See scripts/k8s-local/README.md for why each step is here.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BINARIES=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet)
have_all() {
  local b
  for b in "${BINARIES[@]}" pause; do [[ -x "$K8S_BIN/$b" ]] || return 1; done
}
if have_all; then log "kubernetes $K8S_VERSION binaries cached in $K8S_BIN"; exit 0; fi

# Host packages: Go 1.19 and build tools, etcd, the Docker engine, debootstrap for the base image.
PKGS=(golang-1.19-go rsync golang-github-modern-go-reflect2-dev etcd-server docker.io
  debootstrap iptables gcc libc6-dev make)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$K8S_SRC" "$K8S_BIN"
TREE="$K8S_SRC/kubernetes-$K8S_VERSION"
if [[ ! -f "$TREE/.driftloop-patched" ]]; then
  # A private deb-src list: the system's apt configuration is left alone.
  S="$K8S_SRC/apt"
  mkdir -p "$S/parts" "$S/lists/partial" "$S/cache/archives/partial"
  cat >"$S/parts/src.sources" <<SRC
Types: deb-src
URIs: $(debian_mirror)
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  A=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$S/parts"
    -o "Dir::State::Lists=$S/lists" -o "Dir::Cache=$S/cache")
  log "fetching Debian source package kubernetes"
  apt-get "${A[@]}" update >&2
  [[ -n "$(ls "$K8S_SRC"/kubernetes_*.orig.tar.gz 2>/dev/null)" ]] ||
    (cd "$K8S_SRC" && apt-get "${A[@]}" source --download-only kubernetes >&2)
  rm -rf "$TREE"
  (cd "$K8S_SRC" && tar xzf kubernetes_*.orig.tar.gz)
  [[ -d "$TREE" ]] || die "source tree $TREE not found after unpacking"
  # The vendored reflect2 1.0.1 crashes under Go >= 1.18: swap in Debian's 1.0.2.
  rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$TREE/vendor/github.com/modern-go/"
  rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"
  touch "$TREE/.driftloop-patched"
fi

log "building kubernetes $K8S_VERSION (nice 10; log: $K8S_SRC/build.log)"
start=$SECONDS
(
  cd "$TREE"
  PATH=/usr/lib/go-1.19/bin:$PATH GOPROXY=off CGO_ENABLED=0 GOFLAGS=-mod=vendor \
    nice -n 10 make WHAT="cmd/kube-apiserver cmd/kubectl cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet"
) >"$K8S_SRC/build.log" 2>&1 || { tail -30 "$K8S_SRC/build.log" >&2; die "kubernetes build failed"; }
out="$TREE/_output/bin"
[[ -d "$out" ]] || out="$TREE/_output/local/bin/linux/amd64"
for b in "${BINARIES[@]}"; do install -m 0755 "$out/$b" "$K8S_BIN/$b"; done

# Workaround 1: nothing can be pulled, so the pod sandbox image is built from the tree's pause.c.
gcc -Os -Wall -Werror -static -DVERSION="v3.2-driftloop" -o "$K8S_BIN/pause" \
  "$TREE/build/pause/linux/pause.c"
log "built in $((SECONDS - start))s: $(ls "$K8S_BIN" | tr '\n' ' ')"
