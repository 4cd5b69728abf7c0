"""Build the static web app: a folder any static host (or `mnist-edge web --serve`) can serve,
where the model runs in the visitor's browser and keeps working offline.

    site/
      index.html  app.css  app.webmanifest  sw.js  icons/  number_spec.json (runtime/number_spec.json)
      js/          the app's plain ES modules: draw, preprocess (+ resample), number (+ sequence, number_page), infer, samples, zip, page
      models.json  what the page offers: one entry per bundled model and precision
      models/<model>/manifest.json + model file(s)   (the export's manifest, bundled artifacts only)
                     + its number reader (reader.onnx), when the export has one with a passed proof
      vendor/<engine>/   the engine's runtime files, copied from its npm package (never a CDN)
      parity.md  parity.json   what the build proved in Chromium (demo/web_proofs.py)

Which artifact a model ships and which engine runs it come from the format registry
(`mnist_edge.formats`: a kind's `browser_engines`, an engine's `files`). The npm packages are
installed once per lockfile into the user cache (`npm ci`), so the build works the same from a
source checkout and from an installed wheel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mnist_edge import formats
from mnist_edge.demo import web_signing
from mnist_edge.errors import MnistEdgeError
from mnist_edge.files import atomic_write_bytes, atomic_write_text, process_alive, sha256_file
from mnist_edge.manifest import Artifact, Manifest, find_exports, read_manifest, write_manifest

from .web_source import SOURCE, manifests_of, package_version

PACKAGE_FILES = ("package.json", "package-lock.json")
APP_FILES = ("index.html", "app.css", "app.webmanifest", "js")  # copied as they are
SERVICE_WORKER = "sw.js"  # copied with its list of files and version filled in
PRECACHE_LINE = re.compile(r"^const PRECACHE = .*$", re.MULTILINE)
SITE_MARKER = ".mnist-edge-site"  # an --out folder holding this may be replaced by a new build
PROOF_KEY = ".mnist-edge-proofs"  # what the site's passed proofs were made for (build_site's proof_key)
MODELS_INDEX = "models.json"
NUMBER_SPEC = "number_spec.json"  # runtime/number_spec.json, read by js/number.js
DEFAULT_PRECISIONS = formats.SITE_PRECISIONS  # the smallest download that keeps the test accuracy
NPM_TIMEOUT = 600
# A bundled model's folder is named after its manifest's model name: a plain name, never a path.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class WebBuildError(MnistEdgeError):
    """The site cannot be built: no exports, a missing precision, npm missing or failing, a bad --out."""


@dataclass(frozen=True)
class BundledModel:
    """One artifact the site ships, with the export manifest it comes from and the engine that runs it."""

    manifest: Manifest
    artifact: Artifact
    engine: str  # a key of formats.BROWSER_ENGINES

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def id(self) -> str:
        return f"{self.name}-{self.artifact.precision}"

    @property
    def folder(self) -> str:
        return f"models/{self.name}"

    @property
    def title(self) -> str:
        return f"{self.name} · {self.artifact.precision} ({self.artifact.test_accuracy:.2%} on the test set)"


# --- what goes in ---------------------------------------------------------------------------


def browser_artifact(manifest: Manifest, precision: str) -> tuple[Artifact, str] | None:
    """The first artifact (registry order) at `precision` that a bundled browser engine runs."""
    for artifact in manifest.artifacts:
        if artifact.precision != precision:
            continue
        for engine in formats.kind(artifact.file).browser_engines:
            if formats.BROWSER_ENGINES[engine].bundled:
                return artifact, engine
    return None


def choose_models(
    root: str | os.PathLike, names: tuple[str, ...] = (), precisions: tuple[str, ...] = DEFAULT_PRECISIONS
) -> list[BundledModel]:
    """The artifacts to bundle from the exports under `root`: every model (or those `names`), at each
    of `precisions`. Every problem is one WebBuildError listing what exists."""
    exports = find_exports(root)
    if not exports:
        raise WebBuildError(f"no exported model under {root}; run `mnist-edge pipeline` (or `mnist-edge export`) first")
    manifests = [read_manifest(path) for path in exports]
    check_model_names(manifests)
    by_name = {m.name: m for m in manifests}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise WebBuildError(f"no exported model named {', '.join(missing)} under {root} (found: {', '.join(by_name)})")
    chosen = []
    for manifest in (by_name[n] for n in names) if names else manifests:
        for precision in precisions:
            found = browser_artifact(manifest, precision)
            if found is None:
                runnable = sorted({a.precision for a in manifest.artifacts if browser_artifact(manifest, a.precision)})
                raise WebBuildError(
                    f"{manifest.where}: no {precision} artifact a browser engine runs "
                    f"(precisions with one: {', '.join(runnable) or 'none'}); choose --precision from those"
                )
            chosen.append(BundledModel(manifest, *found))
    return chosen


def check_model_names(manifests: list[Manifest]) -> None:
    """Each model name is a plain folder name (a manifest's `../x` never becomes a path) and
    names one export only."""
    seen: dict[str, Manifest] = {}
    for manifest in manifests:
        if not MODEL_NAME.fullmatch(manifest.name):
            raise WebBuildError(
                f"{manifest.where}: model name {manifest.name!r} is not a plain name (letters, digits, '.', '_', '-', "
                "at most 64, starting with a letter or digit); the site names a folder after it"
            )
        if manifest.name in seen:
            raise WebBuildError(
                f"two exports are named {manifest.name!r} ({seen[manifest.name].where} and {manifest.where}); "
                "choose one with --model, or point at one folder"
            )
        seen[manifest.name] = manifest


# --- the npm packages -----------------------------------------------------------------------


def npm_modules(cache: Path | None = None) -> Path:
    """node_modules installed by `npm ci` from the committed lockfile, once per lockfile, in the
    user cache (or `cache`). Raises WebBuildError when npm is missing or fails."""
    from mnist_edge.data import cache_dir

    key = hashlib.sha256(b"".join((SOURCE / name).read_bytes() for name in PACKAGE_FILES)).hexdigest()[:16]
    folder = (cache or cache_dir()) / "web" / key
    complete = folder / "node_modules" / ".mnist-edge-complete"
    if complete.is_file():
        return folder / "node_modules"
    npm = shutil.which("npm")
    if npm is None:
        raise WebBuildError(
            "npm is not installed: the web app takes onnxruntime-web from its npm package at build time; "
            "install Node.js and npm (Debian: sudo apt-get install nodejs npm, or `make system-deps`)"
        )
    work = folder.parent / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(SOURCE / name, work / name)
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip", "npm_config_update_notifier": "false"}
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        shutil.rmtree(work, ignore_errors=True)
        raise WebBuildError(f"npm ci did not finish within {NPM_TIMEOUT} s (is the npm registry reachable?)") from None
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise WebBuildError(f"npm ci failed ({tail}); the web app's runtime files come from npm")
    (work / "node_modules" / ".mnist-edge-complete").touch()
    try:
        work.rename(folder)
    except OSError:  # another build installed the same lockfile meanwhile
        shutil.rmtree(work, ignore_errors=True)
    return folder / "node_modules"


def engine_runtime(engine: str, node_modules: Path) -> dict:
    """Where a bundled engine's files go in the site, and its version: the page's `runtime`."""
    spec = formats.BROWSER_ENGINES[engine]
    return {
        "label": spec.label,
        "version": package_version(node_modules, spec.npm_package),
        "module": f"vendor/{engine}/{Path(spec.files[0]).name}",
    }


# --- building -------------------------------------------------------------------------------


def stage_site(models: list[BundledModel], out: Path, node_modules: Path, public_key: Path | None = None) -> Path:
    """Write the whole site into a staging folder next to `out` and return it (see `publish`)."""
    check_out(out)
    clean_leftovers(out)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        for name in APP_FILES:
            source = SOURCE / name
            if source.is_dir():
                shutil.copytree(source, staging / name)
            else:
                shutil.copy2(source, staging / name)
        engines = {}
        readers = [engine for m in models if (engine := reader_engine(m.manifest)) is not None]  # the number readers' engines
        for engine in dict.fromkeys([m.engine for m in models] + readers):
            engines[engine] = engine_runtime(engine, node_modules)
            vendor = staging / "vendor" / engine
            vendor.mkdir(parents=True)
            for file in formats.BROWSER_ENGINES[engine].files:
                shutil.copy2(node_modules / file, vendor / Path(file).name)
        for manifest, bundled in group_by_model(models):
            copy_model(manifest, bundled, staging, engines)
        write_icons(staging / "icons")
        copy_number_spec(staging)
        atomic_write_text(staging / MODELS_INDEX, json.dumps(models_index(models, engines), indent=2) + "\n")
        exports = [(manifest.root, bundled[0].folder) for manifest, bundled in group_by_model(models)]
        web_signing.add_signatures(staging, exports, public_key)  # with a key: signed exports only
        write_service_worker(staging, models)
        (staging / SITE_MARKER).write_text("built by mnist-edge web; `mnist-edge web` may replace this folder\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def copy_number_spec(staging: Path) -> None:
    """The number-reading recipe's constants, the very file the Python runtime reads, for js/number.js."""
    from mnist_edge.runtime.number import SPEC_FILE

    shutil.copy2(SPEC_FILE, staging / NUMBER_SPEC)


def group_by_model(models: list[BundledModel]) -> list[tuple[Manifest, list[BundledModel]]]:
    groups: dict[str, list[BundledModel]] = {}
    for m in models:
        groups.setdefault(m.name, []).append(m)
    return [(group[0].manifest, group) for group in groups.values()]


def copy_model(manifest: Manifest, bundled: list[BundledModel], staging: Path, engines: dict) -> None:
    """The bundled artifacts, checked against the export's manifest, the export's number reader
    (checked the same way; js/number_page.js reads numbers with it), and that manifest with only them."""
    from mnist_edge.runtime.integrity import read_checked, read_verified

    folder = staging / bundled[0].folder
    folder.mkdir(parents=True)
    for m in bundled:
        atomic_write_bytes(folder / m.artifact.file, read_verified(manifest, m.artifact))
    reader = shipped_reader(manifest)
    if reader is not None:
        atomic_write_bytes(folder / reader.file, read_checked(manifest.root / reader.file, reader.bytes, reader.sha256))
    libraries = {**manifest.libraries, **{engine: runtime["version"] for engine, runtime in engines.items()}}
    site_manifest = dataclasses.replace(manifest, artifacts=tuple(m.artifact for m in bundled), libraries=libraries, reader=reader)
    write_manifest(folder, published(site_manifest))


def shipped_reader(manifest: Manifest):
    """The export's number reader when the site ships it: listed, its proof passed (the runtimes
    use no other: Predictor.has_reader, js/infer.js's hasReader), not named like a model file, and
    a bundled browser engine mirrors the runtime its proof ran on (js/infer.js's readerEngine)."""
    reader = manifest.reader
    if reader is None or not reader.proof.passed or any(reader.file == a.file for a in manifest.artifacts):
        return None
    return reader if _mirroring_engine(reader.proof.engine) is not None else None


def reader_engine(manifest: Manifest) -> str | None:
    """The browser engine (a key of formats.BROWSER_ENGINES) the page runs the export's number reader on, if shipped."""
    reader = shipped_reader(manifest)
    return None if reader is None else _mirroring_engine(reader.proof.engine)


def _mirroring_engine(reference: str) -> str | None:
    return next((name for name, e in formats.BROWSER_ENGINES.items() if e.bundled and e.reference == reference), None)


def published(manifest: Manifest) -> Manifest:
    """The manifest as the site publishes it: nothing about the build machine (its platform, the
    local path of the test set, also named by the number reader's proof; the test set's
    fingerprint stays)."""
    source = manifest.test_set.source
    public = source if "://" in source else (Path(source).name or "local copy")
    reader = manifest.reader
    if reader is not None:
        said = reader.proof.source
        if source and source in said:
            said = said.replace(source, public)
        elif "://" not in said and "/" in said:  # a path the test set does not name: no more than its last part
            said = f"{said.split('/')[0].rstrip()} {said.rsplit('/', 1)[1]}".strip()
        reader = dataclasses.replace(reader, proof=dataclasses.replace(reader.proof, source=said))
    return dataclasses.replace(
        manifest, platform={}, test_set=dataclasses.replace(manifest.test_set, source=public), reader=reader
    )


def models_index(models: list[BundledModel], engines: dict) -> dict:
    """models.json, built from its contract's dataclasses (mnist_edge.site), whose JSON Schema the
    page validates it with."""
    from mnist_edge.site import SiteEngine, SiteIndex, SiteModel

    index = SiteIndex(
        engines={name: SiteEngine(**runtime) for name, runtime in engines.items()},
        models=tuple(
            SiteModel(
                id=m.id,
                name=m.name,
                title=m.title,
                precision=m.artifact.precision,
                engine=m.engine,
                manifest=f"{m.folder}/manifest.json",
                file=m.artifact.file,
                bytes=m.artifact.bytes,
                test_accuracy=m.artifact.test_accuracy,
            )
            for m in models
        ),
    )
    return dataclasses.asdict(index)


def precache_files(site: Path, models: list[BundledModel]) -> list[str]:
    """What the first visit keeps for offline use, relative to the site: every file, plus "./" (the
    page itself), except the model files of the models not shown first (the service worker keeps
    those when they are first chosen), so the first visit downloads one model, not all. The number
    reader of the model shown first is kept (the Number mode reads with it offline); those of other
    models' exports when first used, as their model files."""
    first = {f"{models[0].folder}/{models[0].artifact.file}", *_reader_files(models[:1])}
    skip = {SERVICE_WORKER, SITE_MARKER, PROOF_KEY} | {f"{m.folder}/{m.artifact.file}" for m in models} | set(_reader_files(models))
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    return ["./", *(f for f in files if f not in skip - first)]


def _reader_files(models: list[BundledModel]) -> list[str]:
    """The site paths of the number readers these models' exports ship."""
    return [f"{m.folder}/{reader.file}" for m in models if (reader := shipped_reader(m.manifest)) is not None]


def write_service_worker(site: Path, models: list[BundledModel]) -> None:
    """sw.js with the list of files to keep and a version that changes whenever any site file does."""
    files = precache_files(site, models)
    precache = {"version": site_digest(site)[:16], "files": files}
    source = (SOURCE / SERVICE_WORKER).read_text(encoding="utf-8")
    line = f"const PRECACHE = {json.dumps(precache)}; // written by `mnist-edge web`"
    text, count = PRECACHE_LINE.subn(lambda _: line, source)
    if count != 1:
        raise WebBuildError(f"{SOURCE / SERVICE_WORKER}: expected one `const PRECACHE = ...` line to fill in")
    atomic_write_text(site / SERVICE_WORKER, text)


def site_digest(site: Path) -> str:
    """sha256 over every file of the site (name and content), but the service worker and the marks."""
    digest = hashlib.sha256()
    for path in sorted(p for p in site.rglob("*") if p.is_file() and p.name not in (SERVICE_WORKER, SITE_MARKER, PROOF_KEY)):
        digest.update(f"{path.relative_to(site).as_posix()}\0{sha256_file(path)}\0".encode())
    return digest.hexdigest()


def write_icons(folder: Path) -> None:
    """The app's icons: a light 7 on the page's dark blue (the maskable one keeps to the safe zone)."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for name, size, inset in (("icon-192.png", 192, 0.18), ("icon-512.png", 512, 0.18), ("icon-maskable-512.png", 512, 0.28)):
        image = Image.new("RGBA", (size, size), (17, 24, 39, 255))
        pen = ImageDraw.Draw(image)
        a, b = size * inset, size * (1 - inset)
        width = round(size * 0.09)
        pen.line([(a, a + width / 2), (b, a + width / 2), (a + (b - a) * 0.35, b)], fill=(249, 250, 251, 255), width=width, joint="curve")
        pen.ellipse((b - width * 1.2, b - width * 1.2, b, b), fill=(56, 189, 248, 255))
        image.save(folder / name, optimize=True)


# --- publishing -----------------------------------------------------------------------------


def check_out(out: Path) -> None:
    """Refuse to replace a folder this tool did not build (someone's --out . would be lost)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SITE_MARKER).is_file())):
        raise WebBuildError(f"{out} exists and is not a site built by `mnist-edge web`; choose another --out (nothing was changed)")


def clean_leftovers(out: Path) -> None:
    """Staging and old folders a killed build left next to `out` (a running build's are kept)."""
    for leftover in out.parent.glob(f".{out.name}.*-*"):
        kind, _, pid = leftover.name[len(out.name) + 2 :].rpartition("-")
        if leftover.is_dir() and kind in ("building", "old") and not (pid.isdigit() and process_alive(int(pid))):
            shutil.rmtree(leftover, ignore_errors=True)


def publish(staging: Path, out: Path) -> None:
    """Put the staged site at `out`; a previous site there is replaced only once the new one is complete."""
    check_out(out)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


# --- the whole build --------------------------------------------------------------------------

PROOF_MODES = ("auto", "on", "off")  # auto: prove when Chromium is there; on: fail without it


@dataclass(frozen=True)
class SiteBuild:
    out: Path
    models: list[BundledModel]
    report: object  # web_proofs.ProofReport, or ReusedProofs
    first_visit_bytes: int  # what the service worker keeps on the first visit, uncompressed


def build_site(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    names: tuple[str, ...] = (),
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
    proofs: str = "auto",
    data_dir: str | os.PathLike | None = None,
    cache: Path | None = None,
    screenshots: Path | None = None,
    public_key: str | os.PathLike | None = None,
    log=print,
    steps=None,
) -> SiteBuild:
    """Build, prove and publish the site at `out`. A failed build or a failed proof leaves the
    previous site in place. With a public key (`public_key`, else $MNIST_EDGE_PUBLIC_KEY) only
    exports its owner signed are bundled, and the page checks their signature (demo/web_signing.py).
    `steps`: how to prove it (web_proofs.STEPS, passed in by the CLI; None takes those). A site
    whose content, Chromium and test set are those its previous build proved keeps that build's
    proofs instead of running them again."""
    from mnist_edge.signature import configured_public_key

    if steps is None:  # a Python caller's default; the build itself never imports the proofs
        from mnist_edge.demo.web_proofs import STEPS as steps
    if proofs not in PROOF_MODES:
        raise WebBuildError(f"--proofs {proofs!r}: choose from {', '.join(PROOF_MODES)}")
    out = Path(out)
    check_out(out)
    models = choose_models(root, tuple(names), tuple(precisions))
    log(f"mnist-edge web: bundling {', '.join(m.id for m in models)}")
    node_modules = npm_modules(cache)
    try:
        staging = stage_site(models, out, node_modules, configured_public_key(public_key))
        try:
            report = prove(staging, out, models, node_modules, proofs, data_dir, screenshots, log, steps)
            failures = report.failures()
            if failures:
                raise steps.failed("a browser proof failed, the site was not published: " + "; ".join(failures))
            precached = precache_files(staging, models)[1:]
            first_visit = sum((staging / name).stat().st_size for name in precached)
            publish(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:  # a full or read-only disk: one line, and the previous site stays
        kept = "the previous site is left in place" if out.exists() else "nothing was published"
        raise WebBuildError(f"cannot write the site {out} ({exc.strerror or exc}); {kept}") from exc
    return SiteBuild(out, models, report, first_visit)


def prove(staging: Path, out: Path, models: list[BundledModel], node_modules: Path, proofs: str, data_dir, screenshots, log, steps):
    """Prove the staged site (or reuse the proofs of an identical one at `out`, or say why no
    proof ran), write the report and the service worker; returns the report."""
    report, key = None, None
    if proofs == "off":
        report = steps.not_run("skipped with --proofs off")
    elif proofs == "auto" and steps.chromium_binary() is None:
        report = steps.not_run("no Chromium on this machine (install it, or set $MNIST_EDGE_CHROMIUM)")
    else:
        dataset, test_sha256 = matching_test_set(models, data_dir)
        key = proof_key(staging, steps.chromium_binary(), test_sha256)
        if reuse_proofs(out, staging, key):
            log("mnist-edge web: the site is unchanged since its proofs passed; keeping them (parity.md)")
            write_service_worker(staging, models)
            return ReusedProofs(json.loads((staging / "parity.json").read_text()).get("chromium"))
        log(f"mnist-edge web: proving the site in Chromium ({len(dataset.test):,} test images per artifact and engine)")
        try:
            report = steps.run(staging, models, node_modules, dataset, screenshots=screenshots)
        except steps.unavailable as exc:
            if proofs == "on":
                raise
            report, key = steps.not_run(str(exc)), None
    steps.write_report(staging, report, manifests_of(models))
    write_service_worker(staging, models)  # the manifests now hold the browser proofs
    if key and not report.failures():
        (staging / PROOF_KEY).write_text(key + "\n")
    return report


def matching_test_set(models: list[BundledModel], data_dir) -> tuple:
    """(the MNIST data set, its test set's fingerprint) when it is the one the bundled models were
    measured on; WebBuildError otherwise."""
    from mnist_edge.data import fingerprint, load_dataset

    dataset = load_dataset(data_dir, download=False)
    test_sha256 = fingerprint(dataset.test)
    for manifest in manifests_of(models):
        if test_sha256 != manifest.test_set.sha256:
            raise WebBuildError(
                f"the test set at {dataset.source} is not the one {manifest.name} was measured on "
                f"({manifest.test_set.source}); point --data-dir at it, or build with --proofs off"
            )
    return dataset, test_sha256


def proof_key(staging: Path, chromium: str | None, test_sha256: str) -> str:
    """What the proofs depend on: every staged file (before the proofs write theirs), the
    Chromium binary (path, size, time) and the test set."""
    digest = hashlib.sha256(site_digest(staging).encode())
    if chromium:
        binary = Path(chromium).resolve()
        stat = binary.stat()
        digest.update(f"{binary}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    digest.update(test_sha256.encode())
    return digest.hexdigest()


def reuse_proofs(out: Path, staging: Path, key: str) -> bool:
    """Copy the proofs of the site at `out` into `staging` when they were made for this `key` and
    passed; False (nothing copied) otherwise."""
    try:
        if (out / PROOF_KEY).read_text().strip() != key or not json.loads((out / "parity.json").read_text())["passed"]:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    proven = ["parity.md", "parity.json", PROOF_KEY, *(p.relative_to(out).as_posix() for p in out.glob("models/*/manifest.json"))]
    for name in proven:
        shutil.copy2(out / name, staging / name)
    return True


@dataclass(frozen=True)
class ReusedProofs:
    """The report of proofs kept from the previous build of the same site (they passed;
    parity.md and parity.json hold them)."""

    chromium: str | None
    not_run: None = None
    reused: bool = True

    def failures(self) -> list[str]:
        return []
