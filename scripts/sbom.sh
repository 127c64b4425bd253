#!/usr/bin/env bash
# CycloneDX 1.5 SBOM (JSON) of the Python environment inside a built image.
#
#   scripts/sbom.sh IMAGE OUTDIR        # e.g. scripts/sbom.sh driftloop-platform:dev build/sbom
#
# Writes OUTDIR/<image name>-<tag>.cdx.json and prints its path. The generator is
# platform/driftloop/supply/sbom.py (standard library only), fed on standard input to the
# image's own `python` in a throwaway container without network: it reads the installed
# distributions of the image's /opt/venv, nothing on this host, and needs nothing in the image
# but Python. The image id (and repo digest, when pushed) goes into the SBOM's metadata.
#
# Environment (optional):
#   SBOM_MLFLOW=1   also log the file as an artifact of the MLflow run "build IMAGE" (the
#                   configured tracking server; `python -m driftloop.supply log-sbom`)
#   PYTHON          the interpreter with driftloop installed, for SBOM_MLFLOW (.venv/bin/python)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD
GENERATOR=$REPO_ROOT/platform/driftloop/supply/sbom.py

log() { printf '[sbom %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: scripts/sbom.sh IMAGE OUTDIR"
image=$1
outdir=$2
[[ -n "$image" ]] || die "IMAGE is empty"
command -v docker >/dev/null || die "docker CLI not found"
image_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) \
  || die "image $image not found (build it first: make images)"
repo_digest=$(docker image inspect -f '{{join .RepoDigests ","}}' "$image" 2>/dev/null || true)

# driftloop-platform:dev -> driftloop-platform-dev; registry:5000/x/y:1.2 -> y-1.2
name=${image##*/}
if [[ "$name" == *:* ]]; then base="${name%%:*}-${name#*:}"; else base="$name-latest"; fi
base=${base//[^A-Za-z0-9._-]/_}
mkdir -p "$outdir"
out="$outdir/$base.cdx.json"
tmp=$(mktemp "$outdir/.$base.XXXXXX")
trap 'rm -f "$tmp"' EXIT

props=(--property "docker:image:id=$image_id")
[[ -z "$repo_digest" ]] || props+=(--property "docker:image:repo-digests=$repo_digest")
log "SBOM of $image ($image_id)"
docker run --rm -i --network none --entrypoint python "$image" \
  - --image "$image" --out - "${props[@]}" <"$GENERATOR" >"$tmp" \
  || die "the SBOM generator failed inside $image"
grep -q '"bomFormat": "CycloneDX"' "$tmp" || die "no CycloneDX document came back from $image"
components=$(grep -c '"purl": "pkg:pypi/' "$tmp" || true)
((components > 0)) || die "the SBOM of $image lists no Python package"
mv "$tmp" "$out"
trap - EXIT
log "$out: $components Python packages"

if [[ "${SBOM_MLFLOW:-0}" == 1 ]]; then
  python=${PYTHON:-$REPO_ROOT/.venv/bin/python}
  "$python" -m driftloop.supply log-sbom "$out" --image "$image" >&2 \
    || die "logging $out to MLflow failed"
fi
echo "$out"
