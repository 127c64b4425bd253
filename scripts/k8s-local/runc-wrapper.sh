#!/bin/sh
# OCI runtime wrapper registered with `dockerd --add-runtime wrapped=THIS --default-runtime=wrapped`.
# Workaround 2 in scripts/k8s-local/README.md: dockershim asks for oom_score_adj -998 and
# `docker run --oom-score-adj` < 0 needs CAP_SYS_RESOURCE, which this machine lacks. Clamp the
# bundle's process.oomScoreAdj to >= 0, then exec the real runc with the same arguments.
bundle=""
prev=""
for arg in "$@"; do
  case "$prev" in --bundle | -b) bundle=$arg ;; esac
  case "$arg" in --bundle=*) bundle=${arg#--bundle=} ;; esac
  prev=$arg
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  tmp="$bundle/config.json.clamp"
  if jq 'if (.process.oomScoreAdj // 0) < 0 then .process.oomScoreAdj = 0 else . end' \
    "$bundle/config.json" >"$tmp"; then
    mv "$tmp" "$bundle/config.json"
  else
    rm -f "$tmp"
  fi
fi
exec runc "$@"
