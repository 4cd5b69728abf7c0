// node --test tests/js/signature.test.mjs: demo/web/js/signature.js against an export signed in
// Python by model-signing (tests/js/make_signature_fixture.py; $SIGNED_FIXTURE points at a fresh
// one when tests/test_signing.py runs this, else the committed tests/js/fixture is used).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { checkNotRollback, checkSignedModel, derToRaw, SignatureError } from '../../demo/web/js/signature.js';

const fixture = process.env.SIGNED_FIXTURE || fileURLToPath(new URL('./fixture', import.meta.url));
const read = (...parts) => new Uint8Array(readFileSync(join(fixture, ...parts)));
const text = (...parts) => readFileSync(join(fixture, ...parts), 'utf8');

function signedModel(changes = {}) {
  const signedManifestBytes = read('export', 'manifest.json');
  return {
    bundle: JSON.parse(text('export', 'model.sig')),
    publicKeyPem: text('owner.pub.pem'),
    signedManifestBytes,
    siteManifest: JSON.parse(new TextDecoder().decode(signedManifestBytes)),
    file: 'model.onnx',
    bytes: read('export', 'model.onnx'),
    ...changes,
  };
}

async function refusal(model) {
  try {
    await checkSignedModel(model);
  } catch (error) {
    assert.ok(error instanceof SignatureError, `expected a SignatureError, got ${error}`);
    return error;
  }
  assert.fail('the model was accepted');
}

test('a Python-signed export passes and gives its signed version', async () => {
  const result = await checkSignedModel(signedModel());
  assert.equal(result.name, 'mlp');
  assert.match(result.version, /^\d{4}-\d\d-\d\dT/);
});

test('one byte changed in the model is refused', async () => {
  const bytes = read('export', 'model.onnx');
  bytes[100] ^= 1;
  const error = await refusal(signedModel({ bytes }));
  assert.equal(error.reason, 'changed');
  assert.match(error.message, /^model\.onnx changed since the export was signed/);
});

test('a model swapped in with its manifest updated is refused', async () => {
  const manifest = JSON.parse(text('export', 'manifest.json'));
  manifest.artifacts[0].sha256 = '0'.repeat(64);
  const signedManifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
  const error = await refusal(signedModel({ signedManifestBytes, bytes: new Uint8Array(256) }));
  assert.equal(error.reason, 'changed');
  assert.match(error.message, /^manifest\.json changed/);
});

test('a file the signature does not cover is refused', async () => {
  const error = await refusal(signedModel({ file: 'model.int8.onnx' }));
  assert.equal(error.reason, 'added');
});

test("another key's signature is refused", async () => {
  const error = await refusal(signedModel({ bundle: JSON.parse(text('stranger.sig')) }));
  assert.equal(error.reason, 'wrong-key');
});

test("another key's signature claiming the owner's key does not verify", async () => {
  const bundle = JSON.parse(text('stranger.sig'));
  bundle.verificationMaterial.publicKey.hint = JSON.parse(text('export', 'model.sig')).verificationMaterial.publicKey.hint;
  const error = await refusal(signedModel({ bundle }));
  assert.equal(error.reason, 'bad-signature');
});

test('an altered payload does not verify', async () => {
  const bundle = JSON.parse(text('export', 'model.sig'));
  const statement = JSON.parse(atob(bundle.dsseEnvelope.payload));
  statement.predicate.resources.find((r) => r.name === 'model.onnx').digest = 'f'.repeat(64);
  bundle.dsseEnvelope.payload = btoa(JSON.stringify(statement));
  const error = await refusal(signedModel({ bundle }));
  assert.equal(error.reason, 'bad-signature');
});

test("a site manifest that disagrees with the signed one is refused", async () => {
  const model = signedModel();
  model.siteManifest.class_names = [...model.siteManifest.class_names].reverse();
  const error = await refusal(model);
  assert.equal(error.reason, 'changed');
  assert.match(error.message, /on class_names/);
});

test('an older export than the newest one run is refused; a newer one replaces it', () => {
  const values = new Map();
  const storage = { getItem: (k) => values.get(k) ?? null, setItem: (k, v) => values.set(k, v) };
  checkNotRollback('mlp', '2026-12-01T10:00:00+00:00', storage);
  checkNotRollback('mlp', '2026-12-02T10:00:00+00:00', storage); // newer: accepted
  assert.throws(() => checkNotRollback('mlp', '2026-12-01T10:00:00+00:00', storage), (e) => e.reason === 'rollback');
  checkNotRollback('cnn', '2026-11-01T00:00:00+00:00', storage); // per model
});

test('DER signatures with padded or short integers become r || s', () => {
  const r = [0x00, 0x80, ...new Array(31).fill(1)]; // 33 bytes: a sign byte before a high bit
  const s = new Array(31).fill(2); // 31 bytes: one leading zero dropped
  const der = Uint8Array.from([0x30, 4 + r.length + s.length, 0x02, r.length, ...r, 0x02, s.length, ...s]);
  const raw = derToRaw(der);
  assert.equal(raw.length, 64);
  assert.deepEqual(Array.from(raw.slice(0, 32)), [0x80, ...new Array(31).fill(1)]);
  assert.deepEqual(Array.from(raw.slice(32)), [0, ...new Array(31).fill(2)]);
});
