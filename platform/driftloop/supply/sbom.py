"""A CycloneDX 1.5 SBOM (JSON) of a Python environment, from its installed distributions.

Standard library only, and importing nothing of driftloop, so the same file runs inside any
built image, fed on standard input (``scripts/sbom.sh`` does this)::

    docker run --rm -i --network none --entrypoint python IMAGE - --name IMAGE --out - < sbom.py
    python -m driftloop.supply sbom --out build/sbom/venv.cdx.json     # this environment

Per distribution: name, version, purl (``pkg:pypi/...``), the licence as its metadata declares
it (``License-Expression`` as an SPDX expression, else the ``License`` field or the licence
classifiers by name), author, description, the archive hash where pip recorded one
(``direct_url.json`` of a file or URL install; an index install records none), and its
``Requires-Dist`` edges among the installed distributions (markers evaluated for this
interpreter, extras followed)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import re
import sys
import sysconfig
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

SPEC_VERSION = "1.5"
TOOL_NAME = "driftloop.supply.sbom"
#: A ``License`` field longer than this, or on several lines, is a licence text, not a name.
MAX_LICENCE_NAME = 80
_HASH_ALGS = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512", "md5": "MD5"}


def canonical_name(name: str) -> str:
    """PEP 503 normalised name, the purl form of a PyPI name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def purl(name: str, version: str) -> str:
    """``pkg:pypi/name@version`` (a local version's ``+`` percent-encoded, as purl requires)."""
    return f"pkg:pypi/{canonical_name(name)}@{quote(version, safe='')}"


def environment_paths() -> list[str]:
    """The running interpreter's site-packages (purelib, platlib), not all of ``sys.path``."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _field(meta: Any, key: str) -> str | None:
    """A metadata field, or None when absent (``PackageMetadata`` has no ``get``)."""
    values = meta.get_all(key)
    return str(values[0]) if values else None


def _licences(meta: Any) -> list[dict[str, Any]]:
    expression = _field(meta, "License-Expression")
    if expression:
        return [{"expression": " ".join(expression.split())}]
    text = (_field(meta, "License") or "").strip()
    if text and "\n" not in text and len(text) <= MAX_LICENCE_NAME and text.upper() != "UNKNOWN":
        return [{"license": {"name": text}}]
    names = [
        c.rsplit("::", 1)[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    names = [n for n in dict.fromkeys(names) if n not in ("OSI Approved", "DFSG approved")]
    return [{"license": {"name": n}} for n in names]


def _hashes(dist: md.Distribution) -> list[dict[str, str]]:
    raw = dist.read_text("direct_url.json")
    if not raw:
        return []
    try:
        info = json.loads(raw).get("archive_info", {})
    except (ValueError, AttributeError):
        return []
    hashes = dict(info.get("hashes") or {})
    if not hashes and "=" in str(info.get("hash", "")):
        alg, _, value = str(info["hash"]).partition("=")
        hashes = {alg: value}
    return [
        {"alg": _HASH_ALGS[alg.lower()], "content": value}
        for alg, value in sorted(hashes.items())
        if alg.lower() in _HASH_ALGS
    ]


def _author(meta: Any) -> str | None:
    author = (_field(meta, "Author") or "").strip()
    if not author:
        # "Name <mail>, Other <mail>" -> the names
        emails = _field(meta, "Author-email") or ""
        author = ", ".join(
            part.split("<")[0].strip().strip('"') for part in emails.split(",") if part.strip()
        )
    author = " ".join(author.split())
    return author[:200] or None


def _component(dist: md.Distribution) -> dict[str, Any]:
    meta = dist.metadata
    name, version = meta["Name"], meta["Version"]
    ref = purl(name, version)
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": name,
        "version": version,
        "purl": ref,
    }
    author = _author(meta)
    if author:
        component["author"] = author
    summary = " ".join((_field(meta, "Summary") or "").split())
    if summary:
        component["description"] = summary
    licences = _licences(meta)
    if licences:
        component["licenses"] = licences
    hashes = _hashes(dist)
    if hashes:
        component["hashes"] = hashes
    return component


def _requirement_parser() -> Callable[[str], Any] | None:
    """``packaging``'s Requirement (or pip's vendored copy, present in any venv with pip); None
    when neither is there: the SBOM then has no dependency graph."""
    try:
        import packaging.requirements as requirements

        return requirements.Requirement
    except ImportError:
        pass
    try:
        import pip._vendor.packaging.requirements as vendored

        return vendored.Requirement
    except ImportError:
        return None


def _dependencies(dists: dict[str, md.Distribution]) -> dict[str, list[str]] | None:
    """``{name: [names it requires]}`` among ``dists``: markers evaluated for this interpreter,
    the extras a requirer asks for followed."""
    parse = _requirement_parser()
    if parse is None:
        return None
    extras: dict[str, set[str]] = {name: set() for name in dists}
    edges: dict[str, set[str]] = {name: set() for name in dists}
    changed = True
    while changed:  # until no requirer asks for a new extra
        changed = False
        for name, dist in dists.items():
            for line in dist.requires or []:
                try:
                    req = parse(line)
                except Exception:  # an unparsable Requires-Dist: no edge, not a failed SBOM
                    continue
                target = canonical_name(req.name)
                if target not in dists or target == name:
                    continue
                wanted = ["", *sorted(extras[name])]
                if req.marker is not None and not any(
                    req.marker.evaluate({"extra": extra}) for extra in wanted
                ):
                    continue
                edges[name].add(target)
                new = {canonical_name(e) for e in req.extras} - extras[target]
                if new:
                    extras[target] |= new
                    changed = True
    return {name: sorted(targets) for name, targets in edges.items()}


def build(
    paths: Sequence[str] | None = None,
    name: str = "python-environment",
    version: str | None = None,
    component_type: str = "application",
    properties: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The SBOM (a JSON-ready dict) of the distributions on ``paths`` (default: this
    interpreter's site-packages). ``name``/``version``: what the SBOM describes (an image
    ``repo:tag`` -> name ``repo``, version ``tag``); ``component_type``: ``container`` for an
    image; ``properties``: more ``(name, value)`` facts about it (e.g. the image id)."""
    found: dict[str, md.Distribution] = {}
    for dist in md.distributions(path=list(paths) if paths is not None else environment_paths()):
        dist_name = dist.metadata["Name"]
        if dist_name and dist.metadata["Version"]:
            found.setdefault(canonical_name(dist_name), dist)  # first on the path wins
    dists = dict(sorted(found.items()))
    components = [_component(d) for d in dists.values()]
    refs = {key: c["bom-ref"] for key, c in zip(dists, components, strict=True)}
    root_ref = f"root:{name}@{version or 'unversioned'}"
    root: dict[str, Any] = {"type": component_type, "bom-ref": root_ref, "name": name}
    if version:
        root["version"] = version
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "tools": {"components": [{"type": "application", "name": TOOL_NAME}]},
            "component": root,
            "properties": [
                {"name": "python:version", "value": ".".join(map(str, sys.version_info[:3]))},
                {"name": "python:implementation", "value": sys.implementation.name},
                {"name": "python:platform", "value": sysconfig.get_platform()},
                *({"name": k, "value": v} for k, v in properties),
            ],
        },
        "components": components,
    }
    graph = _dependencies(dists)
    if graph is not None:
        required = {t for targets in graph.values() for t in targets}
        top = [refs[k] for k in dists if k not in required]
        bom["dependencies"] = [{"ref": root_ref, "dependsOn": top}] + [
            {"ref": refs[k], "dependsOn": [refs[t] for t in graph[k]]} for k in dists
        ]
    return bom


def split_image(image: str) -> tuple[str, str | None]:
    """``registry:5000/repo:tag`` -> (``registry:5000/repo``, ``tag``); no tag -> None."""
    head, sep, tail = image.rpartition(":")
    if sep and "/" not in tail:
        return head, tail
    return image, None


def write(bom: dict[str, Any], out: str) -> None:
    text = json.dumps(bom, indent=2, sort_keys=False) + "\n"
    if out == "-":
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sbom", description="CycloneDX 1.5 JSON SBOM of a Python environment"
    )
    p.add_argument("--out", default="-", help="file to write ('-': standard output)")
    p.add_argument(
        "--path",
        action="append",
        help="a folder to read installed distributions from (repeatable; default: this "
        "interpreter's site-packages)",
    )
    p.add_argument("--name", default="python-environment", help="what the SBOM describes")
    p.add_argument("--image", help="an image NAME:TAG the SBOM describes (sets name, version)")
    p.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fact about what the SBOM describes, kept in metadata.properties (repeatable)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    properties = []
    for item in args.property:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--property {item!r}: expected NAME=VALUE")
        properties.append((key, value))
    if args.image:
        name, version = split_image(args.image)
        bom = build(args.path, name, version, "container", properties)
    else:
        bom = build(args.path, name=args.name, properties=properties)
    write(bom, args.out)
    return 0


if __name__ == "__main__":  # also when fed to ``python -`` inside an image
    sys.exit(main())
