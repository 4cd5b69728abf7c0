// The proof harness of `mnist-edge web`: runs an artifact on a whole test set in this browser with
// the app's own inference module (integrity check included) and hands the probabilities back to
// Python, which compares them with its own engine's. Not part of the site.

import { loadModel } from '../js/infer.js';

const loaded = new Map();

async function testImages(url) {
  if (!loaded.has(url)) loaded.set(url, fetch(url).then((r) => r.arrayBuffer()).then((b) => new Float32Array(b)));
  return loaded.get(url);
}

function toBase64(floats) {
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** Run one artifact on every image of `data` (float32 [n, height, width]) in batches. */
window.runArtifact = async ({ entry, runtime, data, batch }) => {
  try {
    const t0 = performance.now();
    const model = await loadModel(entry, runtime);
    const loadMs = performance.now() - t0;
    const x = await testImages(data);
    const n = x.length / model.pixels;
    const classes = model.classNames.length;
    const out = new Float32Array(n * classes);
    const t1 = performance.now();
    for (let i = 0; i < n; i += batch) {
      const m = Math.min(batch, n - i);
      out.set(await model.run(x.slice(i * model.pixels, (i + m) * model.pixels), m), i * classes);
    }
    return { ok: true, images: n, probabilities: toBase64(out), loadMs, runMs: performance.now() - t1 };
  } catch (error) {
    return { ok: false, error: String(error?.message || error) };
  }
};

window.proofReady = true;
