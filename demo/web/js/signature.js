// Signed exports in the page (docs/security.md): before a model reaches an engine, check the
// export's model.sig, the Sigstore bundle `mnist-edge sign` writes with OpenSSF model-signing.
//
// The bundle holds a DSSE envelope: its payload is an in-toto statement listing the sha256 of
// every file of the export, signed with ECDSA P-256 / SHA-256 over the DSSE pre-authentication
// encoding. The page checks, with WebCrypto and the public key the build embedded (trust.js):
//   1. the bundle names the embedded key, and the signature verifies with it;
//   2. the export's manifest.json (shipped as signed-manifest.json) and the model file hash to
//      what was signed, and the site's manifest says the same about input, output and classes;
//   3. the export is not older than the newest one this browser already ran (no rollback): the
//      signed manifest's `created` time is the version.
// Any failure is a SignatureError naming its reason; the files are dropped from the browser's
// caches so the service worker never serves them again.

import { PUBLIC_KEY_PEM } from './trust.js';

export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
const SAME_IN_BOTH = ['input', 'output', 'class_names']; // what the page reads from the site's manifest
const VERSION_KEY = 'mnist-edge.signed-version.'; // + model name, in localStorage

export class SignatureError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = 'SignatureError';
    this.reason = reason; // unsigned, wrong-key, bad-signature, changed, added, rollback, malformed
  }
}

// --- encodings -----------------------------------------------------------------------------

export function base64ToBytes(text) {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** DSSE's pre-authentication encoding: "DSSEv1 <len> <type> <len> <payload>". */
export function pae(payloadType, payload) {
  const type = new TextEncoder().encode(payloadType);
  const head = new TextEncoder().encode(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** An ECDSA signature from DER (what model-signing writes) to r || s (what WebCrypto verifies). */
export function derToRaw(der, size = 32) {
  const fail = () => {
    throw new SignatureError('malformed', 'the signature is not a DER-encoded ECDSA signature');
  };
  if (der[0] !== 0x30) fail();
  let offset = der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2;
  const out = new Uint8Array(2 * size);
  for (let part = 0; part < 2; part++) {
    if (der[offset] !== 0x02) fail();
    let length = der[offset + 1];
    let start = offset + 2;
    offset = start + length;
    while (length > size && der[start] === 0) [start, length] = [start + 1, length - 1]; // sign padding
    if (length > size || offset > der.length) fail();
    out.set(der.subarray(start, start + length), part * size + size - length);
  }
  return out;
}

export async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new SignatureError('malformed', 'this page cannot check signatures: WebCrypto needs https:// or http://localhost');
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

// --- the signature -------------------------------------------------------------------------

/** The statement the bundle signs, as {digests: Map(file -> sha256)}, once the signature verifies
 *  with `publicKeyPem` (the PEM text model-signing fingerprints in the bundle's key hint). */
export async function verifyBundle(bundle, publicKeyPem) {
  const envelope = bundle?.dsseEnvelope;
  const signature = envelope?.signatures?.[0]?.sig;
  if (!envelope || !signature || envelope.payloadType !== PAYLOAD_TYPE) {
    throw new SignatureError('malformed', `model.sig is not a model-signing bundle (a DSSE envelope of ${PAYLOAD_TYPE})`);
  }
  const hint = bundle.verificationMaterial?.publicKey?.hint;
  if (hint !== (await sha256Hex(new TextEncoder().encode(publicKeyPem)))) {
    throw new SignatureError('wrong-key', 'model.sig was signed by another key than the one this app trusts; refusing the model');
  }
  const spki = base64ToBytes(publicKeyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''));
  const key = await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const payload = base64ToBytes(envelope.payload);
  const valid = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    key,
    derToRaw(base64ToBytes(signature)),
    pae(envelope.payloadType, payload),
  );
  if (!valid) throw new SignatureError('bad-signature', 'model.sig does not verify with the trusted key (it was altered); refusing the model');
  const statement = JSON.parse(new TextDecoder().decode(payload));
  const predicate = statement.predicate || {};
  if (statement.predicateType !== PREDICATE_TYPE || predicate.serialization?.hash_type !== 'sha256') {
    throw new SignatureError('malformed', 'model.sig does not sign sha256 file hashes');
  }
  return { digests: new Map((predicate.resources || []).map((r) => [r.name, r.digest])) };
}

/** Check one model of a signed export. `signedManifestBytes` are the export's manifest.json as
 *  signed, `siteManifest` what the page reads, `file`/`bytes` the model. Returns the signed
 *  manifest's {name, version}. */
export async function checkSignedModel({ bundle, publicKeyPem, signedManifestBytes, siteManifest, file, bytes }) {
  const { digests } = await verifyBundle(bundle, publicKeyPem);
  for (const [name, content] of [['manifest.json', signedManifestBytes], [file, bytes]]) {
    if (!digests.has(name)) throw new SignatureError('added', `${name} is not covered by the signature; refusing the model`);
    if ((await sha256Hex(content)) !== digests.get(name)) {
      throw new SignatureError('changed', `${name} changed since the export was signed; refusing the model`);
    }
  }
  const signed = JSON.parse(new TextDecoder().decode(signedManifestBytes));
  for (const field of SAME_IN_BOTH) {
    if (JSON.stringify(signed[field]) !== JSON.stringify(siteManifest[field])) {
      throw new SignatureError('changed', `the site's manifest.json differs from the signed one on ${field}; refusing the model`);
    }
  }
  return { name: signed.model?.name, version: signed.created };
}

/** Refuse an export older than the newest this browser ran for `name`; remember a newer one. */
export function checkNotRollback(name, version, storage = globalThis.localStorage) {
  const key = VERSION_KEY + name;
  const newest = storage?.getItem(key);
  if (typeof version !== 'string' || !version) throw new SignatureError('malformed', 'the signed manifest has no creation time');
  if (newest && version < newest) {
    throw new SignatureError(
      'rollback',
      `this ${name} export (made ${version}) is older than the one this browser already ran (made ${newest}); refusing a rollback`,
    );
  }
  storage?.setItem(key, version);
}

/** Drop `urls` from every cache of this site, so the service worker fetches them again. */
export async function forgetCached(urls) {
  if (!globalThis.caches) return;
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const url of urls) await cache.delete(url, { ignoreSearch: true });
  }
}

// --- the page's hook -----------------------------------------------------------------------

export const SIGNATURE_FILE = 'model.sig'; // next to the site's manifest.json
export const SIGNED_MANIFEST_FILE = 'signed-manifest.json'; // the export's manifest.json, as signed

/** What infer.js calls before a model reaches an engine. With no key embedded (a site built
 *  without --public-key) nothing is required, as in the Python runtime; with one, the model is
 *  refused unless its export is signed by it. Returns the signed version, or null. */
export async function checkSignedModelFile(siteManifestUrl, siteManifest, file, bytes, publicKeyPem = PUBLIC_KEY_PEM) {
  if (!publicKeyPem) return null;
  const bundleUrl = new URL(SIGNATURE_FILE, siteManifestUrl);
  const manifestUrl = new URL(SIGNED_MANIFEST_FILE, siteManifestUrl);
  try {
    const [bundle, signedManifestBytes] = await Promise.all([fetchJson(bundleUrl), signedManifest(manifestUrl, siteManifestUrl)]);
    const { name, version } = await checkSignedModel({ bundle, publicKeyPem, signedManifestBytes, siteManifest, file, bytes });
    checkNotRollback(name, version);
    return version;
  } catch (error) {
    await forgetCached([bundleUrl, manifestUrl, new URL(file, siteManifestUrl), siteManifestUrl].map(String));
    if (error instanceof SignatureError) throw error;
    throw new SignatureError('malformed', `the signature could not be checked (${error.message || error}); refusing the model`);
  }
}

/** The export's manifest as signed: signed-manifest.json on a site (whose own manifest.json is
 *  rewritten), else manifest.json itself (an export folder, as the build's proofs load it). Either
 *  way its bytes must hash to what the signature says about manifest.json. */
async function signedManifest(url, fallback) {
  const response = await fetch(url);
  if (response.status === 404) return fetchBytes(fallback);
  if (!response.ok) throw new Error(`${url.pathname}: the server answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchJson(url) {
  return JSON.parse(new TextDecoder().decode(await fetchBytes(url)));
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (response.status === 404 && url.pathname.endsWith(SIGNATURE_FILE)) {
    throw new SignatureError('unsigned', 'this model has no signature (model.sig) but the app requires one; refusing the model');
  }
  if (!response.ok) throw new Error(`${url.pathname}: the server answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}
