// The last good model (docs/security.md): each model that passed its checks is kept in this
// browser's Cache Storage, so that when a newer one is refused (changed, unsigned, signed by
// another key, a rollback...) the page keeps running the previous good one and says which.
//
// Kept per model entry under last-good/<entry id>/<sha256 of the model file>/ (the site's
// manifest.json, the model file, its number reader if it has one and, on a signed site, model.sig
// and signed-manifest.json), with
// last-good/<entry id>/current.json naming the folder. The service worker answers last-good/ URLs
// from this cache only, never from the network; the kept copy is loaded through the very same
// checks as a fresh one (signature, hashes, rollback), so a damaged copy is refused too.

import { SIGNATURE_FILE, SIGNED_MANIFEST_FILE, sha256Hex } from './signature.js';
import { PUBLIC_KEY_PEM } from './trust.js';

export const LAST_GOOD_CACHE = 'mnist-edge-last-good'; // sw.js spares it and serves last-good/ from it
export const LAST_GOOD_PATH = 'last-good/';

const entryFolder = (entry) => new URL(`${LAST_GOOD_PATH}${entry.id}/`, document.baseURI);
const pointerUrl = (entry) => new URL('current.json', entryFolder(entry));

/** Keep the files of `model` (just loaded for `entry`, its checks passed) as this entry's last good
 *  model. The files come again from the service worker's cache (or the network on a first visit):
 *  they are kept only if the model file hashes to what was checked. */
export async function keepLastGood(entry, model) {
  if (!globalThis.caches) return;
  const siteManifestUrl = new URL(entry.manifest, document.baseURI);
  const digest = model.artifact.sha256;
  const folder = new URL(`${digest}/`, entryFolder(entry));
  const files = [];
  const signed = PUBLIC_KEY_PEM ? [SIGNATURE_FILE, SIGNED_MANIFEST_FILE] : []; // a site built with a key only
  const reader = model.manifest.reader ?? null; // the number reader goes with its model (docs/reading.md)
  const expected = new Map([[entry.file, digest], ...(reader ? [[reader.file, reader.sha256]] : [])]);
  for (const name of ['manifest.json', entry.file, ...(reader ? [reader.file] : []), ...signed]) {
    const response = await fetch(new URL(name, siteManifestUrl));
    if (!response.ok) return; // gone since the check: keep the older
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (expected.has(name) && (await sha256Hex(bytes)) !== expected.get(name)) return; // changed since checked: keep the older
    files.push([new URL(name, folder), bytes]);
  }
  const cache = await caches.open(LAST_GOOD_CACHE);
  for (const [url, bytes] of files) await cache.put(url, new Response(bytes));
  const pointer = { ...entry, manifest: new URL('manifest.json', folder).href, version: model.manifest.created ?? null };
  await cache.put(pointerUrl(entry), new Response(JSON.stringify(pointer), { headers: { 'content-type': 'application/json' } }));
  for (const request of await cache.keys()) {
    const url = request.url;
    if (url.startsWith(entryFolder(entry).href) && !url.startsWith(folder.href) && url !== pointerUrl(entry).href) await cache.delete(request);
  }
}

/** The kept entry for `entry` ({...entry, manifest: its kept manifest URL, version}), or null. */
export async function lastGoodEntry(entry) {
  if (!globalThis.caches) return null;
  const response = await (await caches.open(LAST_GOOD_CACHE)).match(pointerUrl(entry));
  return response ? response.json() : null;
}
