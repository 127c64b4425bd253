#!/bin/sh
# Install torch into the active environment during an image build.
#   $1 = TORCH_VARIANT (cpu | cu128 | ...), $2 = TORCH_VERSION, $3 = folder of local wheels,
#   $4 = pip constraints file (pins of torch's own dependencies)
# A local wheel matching the variant (copied into docker/wheels/ by scripts/images.sh) wins, so
# the image builds offline from download.pytorch.org; otherwise the PyTorch index of the variant.
set -eu
variant=$1 version=$2 wheels=$3 constraints=$4
local_wheel=$(ls "$wheels"/torch-"$version"+"$variant"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$local_wheel" ]; then
  echo "torch: local wheel $local_wheel"
  pip install --no-cache-dir -c "$constraints" "$local_wheel"
else
  echo "torch: $version from https://download.pytorch.org/whl/$variant"
  pip install --no-cache-dir -c "$constraints" "torch==$version" \
    --index-url "https://download.pytorch.org/whl/$variant" --extra-index-url https://pypi.org/simple
fi
