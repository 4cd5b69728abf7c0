"""Signed exports (docs/security.md): a real EC P-256 key pair, a real signed copy of the small MLP's
export, and every way an attacker who can write the folder might try to get another model run.
Each is refused, with its own reason, by runtime.load, by `mnist-edge verify` (the CLI's main) and by
the demo's loader; a valid signed export loads everywhere, and an unsigned one still loads without
a key (saying so)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_edge import runtime
from mnist_edge.signature import (
    PUBLIC_KEY_ENV,
    SIGNATURE_NAME,
    SIGNING_KEY_ENV,
    SignatureError,
    SigningFailed,
    generate_key_pair,
    sign_export,
    verify_signature,
)

pytest.importorskip("model_signing", reason="the 'signing' extra is not installed")


def _cli(capsys, *args) -> subprocess.CompletedProcess:
    """`mnist-edge ARGS` through the CLI's own main(), in this process (no key comes from the
    environment: see no_configured_keys), with its exit code and exactly what it printed."""
    from mnist_edge.cli import main

    capsys.readouterr()  # what was printed before is not this command's
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, Path]:
    """The owner's key pair, and a stranger's."""
    folder = tmp_path_factory.mktemp("keys")
    for who in ("owner", "stranger"):
        generate_key_pair(folder / f"{who}.pem", folder / f"{who}.pub.pem")
    return {"private": folder / "owner.pem", "public": folder / "owner.pub.pem", "stranger": folder / "stranger.pem"}


@pytest.fixture(scope="session")
def signed_template(tmp_path_factory, mlp_export, keys) -> Path:
    """artifacts/mlp/export copied and signed by the owner (each test works on its own copy)."""
    model_dir = tmp_path_factory.mktemp("signed") / "mlp"
    shutil.copytree(mlp_export, model_dir / "export")
    sign_export(model_dir / "export", keys["private"])
    return model_dir


@pytest.fixture
def signed(tmp_path, signed_template) -> Path:
    """A fresh signed model folder (mlp/export inside)."""
    model_dir = tmp_path / "artifacts" / "mlp"
    shutil.copytree(signed_template, model_dir)
    return model_dir


@pytest.fixture(autouse=True)
def no_configured_keys():
    """No key from the environment; and none left behind (the demo's hook sets $MNIST_EDGE_PUBLIC_KEY)."""
    names = (PUBLIC_KEY_ENV, SIGNING_KEY_ENV)
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    yield
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(saved)


@pytest.fixture(scope="session")
def digit(mnist) -> np.ndarray:
    return mnist.test.images[0]


def _demo_status(model_dir: Path, public_key: Path, digit: np.ndarray):
    """What the demo page shows for one digit, its loader configured through the --public-key hook."""
    from mnist_edge.cli.demo import require_signatures
    from mnist_edge.demo.app import DigitDemo

    require_signatures(public_key)  # as `mnist-edge demo --public-key` does before launching
    labels, _, status = DigitDemo.from_root(model_dir.parent).predict(digit, "mlp", "fp32", "onnxruntime")
    return labels, status


# --- a valid signature -------------------------------------------------------------------------------


def test_a_signed_export_loads_verifies_and_serves(signed, keys, digit, capsys):
    export = signed / "export"
    predictor = runtime.load(export, public_key=keys["public"])
    assert predictor.signature.startswith("verified: signed by key ")
    unsigned_run = runtime.load(export).predict(digit)  # the same model, no key asked
    assert predictor.predict(digit).digit == unsigned_run.digit

    result = _cli(capsys, "verify", export, "--public-key", keys["public"], "--engine", "onnxruntime")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signature: verified: every file signed by key" in result.stdout.splitlines()[-1]

    labels, status = _demo_status(signed, keys["public"], digit)
    assert labels is not None, status
    assert status.startswith(predictor.class_names[unsigned_run.digit])


def test_without_a_key_an_unsigned_export_loads_as_today_and_says_so(mlp_export, signed, digit):
    assert not (mlp_export / SIGNATURE_NAME).exists()
    assert runtime.load(mlp_export).signature.startswith("unsigned")
    assert runtime.load(signed / "export").signature.startswith("signed, signature not checked")


# --- every attack an owner of the folder could try -------------------------------------------------------


def _flip_one_byte(export: Path, keys) -> None:
    data = bytearray((export / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (export / "model.onnx").write_bytes(bytes(data))


def _add_a_file(export: Path, keys) -> None:
    (export / "notes.txt").write_text("not signed\n")


def _remove_a_file(export: Path, keys) -> None:
    (export / "model.tflite").unlink()  # not the file loaded: only the signature notices


def _swap_the_model(export: Path, keys) -> None:
    """Another valid model (the int8 one) as model.onnx, with the manifest's size and sha256 updated."""
    shutil.copyfile(export / "model.int8.onnx", export / "model.onnx")
    manifest = json.loads((export / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == "model.onnx")
    content = (export / "model.onnx").read_bytes()
    entry.update(sha256=hashlib.sha256(content).hexdigest(), bytes=len(content))
    (export / "manifest.json").write_text(json.dumps(manifest, indent=2))
    runtime.load(export)  # without a key, the swap works: that is the attack


def _sign_with_another_key(export: Path, keys) -> None:
    sign_export(export, keys["stranger"])


def _strip_the_signature(export: Path, keys) -> None:
    (export / SIGNATURE_NAME).unlink()


ATTACKS = {
    "one byte changed": (_flip_one_byte, "changed", "changed: model.onnx)"),
    "file added": (_add_a_file, "added", "added: notes.txt)"),
    "file removed": (_remove_a_file, "removed", "removed: model.tflite)"),
    "model swapped, manifest hash updated": (_swap_the_model, "changed", "changed: manifest.json, model.onnx)"),
    "another key's signature": (_sign_with_another_key, "wrong-key", "signed by another key than public key"),
    "unsigned, key required": (_strip_the_signature, "unsigned", "unsigned export (no model.sig)"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_refused_with_its_reason_everywhere(attack, signed, keys, digit, monkeypatch, capsys):
    damage, reason, words = ATTACKS[attack]
    export = signed / "export"
    damage(export, keys)

    from mnist_edge.runtime import predictor as loader

    engines_opened = []
    monkeypatch.setattr(loader, "open_session", lambda *a, **k: engines_opened.append(a))
    with pytest.raises(SignatureError) as refused:
        runtime.load(export, public_key=keys["public"])
    assert refused.value.reason == reason and words in str(refused.value)
    assert engines_opened == []  # refused before any model bytes reached an engine
    monkeypatch.undo()

    result = _cli(capsys, "verify", export, "--public-key", keys["public"])
    assert result.returncode == 1
    assert result.stdout == ""  # the signature is checked before anything else
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mnist-edge: error: ")
    assert words in result.stderr

    labels, status = _demo_status(signed, keys["public"], digit)
    assert labels is None
    assert status.startswith("Cannot run the model: ") and words in status


def test_an_altered_signature_is_refused(signed, keys):
    bundle = json.loads((signed / "export" / SIGNATURE_NAME).read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    (signed / "export" / SIGNATURE_NAME).write_text(json.dumps(bundle))
    with pytest.raises(SignatureError) as refused:
        runtime.load(signed / "export", public_key=keys["public"])
    assert refused.value.reason == "bad-signature"


def test_the_environment_variable_requires_the_key(signed, keys, monkeypatch):
    _strip_the_signature(signed / "export", keys)
    monkeypatch.setenv(PUBLIC_KEY_ENV, str(keys["public"]))
    with pytest.raises(SignatureError, match="unsigned export"):
        runtime.load(signed / "export")


def test_asking_for_signatures_without_the_extra_is_one_line(signed, keys):
    script = (
        "import sys; sys.modules['model_signing'] = None; from mnist_edge.cli import main; "
        f"sys.exit(main(['verify', {str(signed / 'export')!r}, '--public-key', {str(keys['public'])!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "install the 'signing' extra: pip install 'mnist-edge[signing]'" in result.stderr


# --- signing what is published ----------------------------------------------------------------------------


# `mnist-edge finetune --signing-key` then a signed export, end to end (the folder's signature, the
# export's, runtime.load with the key, tampered copies, a bad key leaving the export as it was):
# tests/test_handwriting.py::test_a_signed_finetune_and_its_signed_export_load_only_as_signed, on the
# fine-tuning that file runs anyway. `mnist-edge pipeline` signs through the same export_model call
# (a pipeline run re-exports all six artifacts: too slow for the suite); what it reuses is below.


# --- the web app's check ------------------------------------------------------------------------------


def test_the_page_check_accepts_a_python_signature_and_refuses_each_attack(tmp_path):
    """demo/web/js/signature.js under `node --test`, against an export signed just now in Python."""
    sys.path.insert(0, str(Path(__file__).parent / "js"))
    from make_signature_fixture import make_fixture

    fixture = make_fixture(tmp_path / "fixture")
    test_file = Path(__file__).parent / "js" / "signature.test.mjs"
    result = subprocess.run(
        ["node", "--test", str(test_file)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "SIGNED_FIXTURE": str(fixture)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "# pass 10" in result.stdout and "# fail 0" in result.stdout


# --- the web app in Chromium ----------------------------------------------------------------------------

WEB_MODEL = "model.int8.onnx"  # what the site bundles by default


def _newer_export(template: Path, out: Path, private_key: Path, days: int) -> Path:
    """The owner's next export: the same files with a later creation time, signed again."""
    from datetime import datetime, timedelta

    shutil.copytree(template / "export", out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["created"] = (datetime.fromisoformat(manifest["created"]) + timedelta(days=days)).isoformat()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sign_export(out, private_key)
    return out


def _set_site_hash(site_model: Path, manifest_file: Path) -> None:
    """What an attacker who can write the site does after changing a model: fix the site's manifest."""
    manifest = json.loads(manifest_file.read_text())
    content = site_model.read_bytes()
    for entry in manifest["artifacts"]:
        if entry["file"] == site_model.name:
            entry.update(sha256=hashlib.sha256(content).hexdigest(), bytes=len(content))
    manifest_file.write_text(json.dumps(manifest, indent=2))


def _flip_a_site_model_byte(site: Path) -> None:
    """One byte of the site's model changed, the site's manifest fixed to match (not the signed one)."""
    model = site / "models" / "mlp" / WEB_MODEL
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    _set_site_hash(model, site / "models" / "mlp" / "manifest.json")


def _site_attacks(site: Path, signed_template: Path, keys, work: Path) -> dict[str, tuple[Path, str]]:
    """Copies of the signed site, each changed by an attacker who can write the web server."""
    attacks = {}

    def copy(name: str) -> Path:
        target = work / name
        shutil.copytree(site, target)
        return target

    changed = copy("changed")  # also on a returning visit, which keeps the last good model (next test)
    _flip_a_site_model_byte(changed)
    attacks["one byte changed"] = (changed, f"{WEB_MODEL} changed since the export was signed")

    swapped = copy("swapped")  # the fp32 model in place of the int8 one, both manifests updated
    folder = swapped / "models" / "mlp"
    shutil.copyfile(signed_template / "export" / "model.onnx", folder / WEB_MODEL)
    _set_site_hash(folder / WEB_MODEL, folder / "manifest.json")
    _set_site_hash(folder / WEB_MODEL, folder / "signed-manifest.json")
    attacks["model swapped, manifest hash updated"] = (swapped, "manifest.json changed since the export was signed")

    uncovered = copy("uncovered")  # a model file the signature does not cover
    folder = uncovered / "models" / "mlp"
    (folder / WEB_MODEL).rename(folder / "model.extra.onnx")
    for name in ("manifest.json", "models.json"):
        path = folder / name if name == "manifest.json" else uncovered / name
        path.write_text(path.read_text().replace(WEB_MODEL, "model.extra.onnx"))
    attacks["file not signed"] = (uncovered, "model.extra.onnx is not covered by the signature")

    stranger = copy("stranger")
    other = work / "stranger-export"
    shutil.copytree(signed_template / "export", other)
    sign_export(other, keys["stranger"])
    shutil.copyfile(other / SIGNATURE_NAME, stranger / "models" / "mlp" / SIGNATURE_NAME)
    attacks["another key's signature"] = (stranger, "signed by another key than the one this app trusts")

    unsigned = copy("unsigned")
    (unsigned / "models" / "mlp" / SIGNATURE_NAME).unlink()
    attacks["unsigned, key required"] = (unsigned, "has no signature (model.sig) but the app requires one")
    return attacks


def _visit(page, url: str) -> tuple[str, str | None]:
    """Open (or reload) the page; its status line and the signed version of the model it runs."""
    page.goto(url)
    page.wait_for_function(
        "() => (s => s.classList.contains('error') || s.textContent.includes('ready'))(document.querySelector('#status'))",
        timeout=60_000,
    )
    version = page.evaluate("window.mnistEdge.state.model?.manifest.created ?? null")
    return page.locator("#status").inner_text(), version


@pytest.fixture(scope="module")
def web_sites(signed_template, keys, tmp_path_factory):
    from mnist_edge.demo import web_build

    work = tmp_path_factory.mktemp("signed-web")
    site = work / "site"
    web_build.build_site(signed_template / "export", site, proofs="off", public_key=keys["public"], log=lambda _: None)
    return site, _site_attacks(site, signed_template, keys, work), work


@pytest.mark.browser
def test_the_web_app_runs_a_signed_model_and_refuses_each_attack(web_sites):
    from playwright.sync_api import sync_playwright

    from mnist_edge.demo import web_proofs
    from mnist_edge.demo.web_server import SiteServer

    site, attacks, _ = web_sites
    assert "BEGIN PUBLIC KEY" in (site / "js" / "trust.js").read_text()
    mounts = {"/": site, **{f"/{folder.name}/": folder for folder, _ in attacks.values()}}
    with SiteServer(mounts) as server, sync_playwright() as playwright:
        browser = web_proofs.launch(playwright)
        try:
            context = browser.new_context()
            status, version = _visit(context.new_page(), server.url)
            assert "ready" in status and version is not None
            for attack, (folder, words) in attacks.items():
                context = browser.new_context()  # a first visit each: nothing kept from another
                status, version = _visit(context.new_page(), f"{server.url}{folder.name}/")
                assert status.startswith("The model could not be loaded: ") and words in status, (attack, status)
                assert version is None
                context.close()
        finally:
            browser.close()


# Resolves once the service worker found by the last visit is installed and active (or none was found).
UPDATE_INSTALLED = """async () => {
  const registration = await navigator.serviceWorker.getRegistration();
  await registration.update().catch(() => {});
  const settled = () => !registration.installing && !registration.waiting && registration.active?.state === 'activated';
  for (let i = 0; i < 600 && !settled(); i++) await new Promise((resolve) => setTimeout(resolve, 100));
}"""


@pytest.fixture(scope="module")
def web_digit(signed_template, mnist) -> tuple[str, list[dict]]:
    """A test digit redrawn with the page's pen that Python reads right with the site's model."""
    from mnist_edge.demo import web_proofs

    predictor = runtime.load(signed_template / "export", file=WEB_MODEL)
    [(label, strokes)] = web_proofs.readable_digits(predictor, mnist.test.images, mnist.test.labels, 1)
    return label, strokes


def _read_digit(page, strokes: list[dict]) -> str | None:
    """What the page reads from a drawing, with whatever model it runs now."""
    page.evaluate("strokes => window.mnistEdge.sketch.setStrokes(strokes)", strokes)
    return page.evaluate("window.mnistEdge.predict().then(result => result?.label ?? null)")


@pytest.mark.browser
def test_a_returning_visitor_gets_a_newer_signed_export_and_keeps_the_last_good_one(web_sites, signed_template, keys, web_digit):
    """Older, then newer: served on the next visit. Then a rollback, then a newer export whose model
    was changed on the server: each refused, and the page keeps reading digits with the newer one."""
    from playwright.sync_api import sync_playwright

    from mnist_edge.demo import web_build, web_proofs
    from mnist_edge.demo.web_server import SiteServer

    _, _, work = web_sites
    older = signed_template / "export"
    newer = _newer_export(signed_template, work / "newer-export", keys["private"], days=1)
    newest = _newer_export(signed_template, work / "newest-export", keys["private"], days=2)
    created = {name: json.loads((path / "manifest.json").read_text())["created"] for name, path in (("older", older), ("newer", newer))}
    live = work / "live"
    label, strokes = web_digit

    def publish(export: Path) -> None:
        web_build.build_site(export, live, proofs="off", public_key=keys["public"], log=lambda _: None)

    def visits_until(predicate, most: int = 3) -> tuple[str, str | None, int]:
        """Visit again until `predicate(status, version)`; between visits, let the service worker
        finish installing the update the visit found (what a returning visitor's browser does)."""
        for visit in range(1, most + 1):
            status, version = _visit(page, server.url)
            if predicate(status, version):
                return status, version, visit
            page.evaluate(UPDATE_INSTALLED)
        return status, version, most

    def still_running_newer(status: str, version: str | None) -> None:
        assert "Still running the last good mlp · int8" in status and f"the export made {created['newer']}" in status, status
        assert version == created["newer"], status
        assert _read_digit(page, strokes) == label  # the previous good model keeps reading digits

    publish(older)
    with SiteServer({"/": live}) as server, sync_playwright() as playwright:
        browser = web_proofs.launch(playwright)
        try:
            page = browser.new_context().new_page()
            status, version = _visit(page, server.url)
            assert version == created["older"], status
            page.wait_for_function("() => document.querySelector('#offline').textContent.startsWith('Works offline')", timeout=60_000)

            publish(newer)
            status, version, visits = visits_until(lambda s, v: v == created["newer"])
            assert version == created["newer"], status
            assert visits == 2  # the visit that finds the update still runs the cached build; the next, the new one
            assert _read_digit(page, strokes) == label

            publish(older)  # a rollback: validly signed, but older than what this browser ran
            status, version, visits = visits_until(lambda s, v: "rollback" in s)
            assert status.startswith("The model could not be loaded: ") and "refusing a rollback" in status, status
            assert visits == 2
            still_running_newer(status, version)
            cached = page.evaluate(f"caches.match('models/mlp/{WEB_MODEL}').then(r => r !== undefined)")
            assert cached is False  # the service worker will not serve the refused model

            publish(newest)  # the owner's next export, its model changed on the web server after the build
            _flip_a_site_model_byte(live)
            status, version, visits = visits_until(lambda s, v: "changed since" in s)
            assert status.startswith("The model could not be loaded: ") and f"{WEB_MODEL} changed since the export was signed" in status, status
            still_running_newer(status, version)
        finally:
            browser.close()


# --- a certificate chain instead of a bare key -------------------------------------------------------------


def _certificate(subject: str, key, issuer_name: str, issuer_key, *, ca: bool, path: Path) -> Path:
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    path.write_bytes(builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def test_a_certificate_signature_checks_against_its_chain_only(signed, tmp_path, capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "other-ca", "signer")}
    ca = _certificate("test CA", keys["ca"], "test CA", keys["ca"], ca=True, path=tmp_path / "ca.crt")
    other = _certificate("other CA", keys["other-ca"], "other CA", keys["other-ca"], ca=True, path=tmp_path / "other.crt")
    leaf = _certificate("signer", keys["signer"], "test CA", keys["ca"], ca=False, path=tmp_path / "signer.crt")
    private = tmp_path / "signer.pem"
    private.write_bytes(
        keys["signer"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    export = signed / "export"
    result = _cli(capsys, "sign", export, "--key", private, "--signing-certificate", leaf, "--certificate-chain", ca)
    assert result.returncode == 0, result.stderr
    assert verify_signature(export, certificate_chain=[ca]).signer == "certificate chain"
    with pytest.raises(SignatureError, match="its certificate is not trusted by") as refused:
        verify_signature(export, certificate_chain=[other])
    assert refused.value.reason == "wrong-key"


def test_the_pipeline_reuses_an_export_only_if_its_signing_key_signed_it(signed, keys):
    """pipeline.build_model re-exports (and signs) unless `signed_with` holds: it never signs files as found."""
    from mnist_edge.signature import signed_with

    export = signed / "export"
    assert signed_with(export, keys["private"])
    assert not signed_with(export, keys["stranger"])
    _swap_the_model(export, keys)
    assert not signed_with(export, keys["private"])
