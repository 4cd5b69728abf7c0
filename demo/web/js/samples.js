// Your own handwriting, kept in this browser (IndexedDB) until you download it as a zip in the
// ImageFolder layout that `mnist-edge evaluate` and `mnist-edge finetune` read:
//     <class>/<n>.png      (n counts up per class, from 1)
// Samples are kept per set of class names, so digits and Fashion-MNIST drawings never mix.

import { zip } from './zip.js';

const DATABASE = 'mnist-edge';
const STORE = 'samples';

/** The folder a class's images go in: its name with path separators made safe (as imagefolder.py). */
export function folderName(className) {
  return className.replaceAll('/', '_').replaceAll('\\', '_');
}

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => {
      const store = request.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
      store.createIndex('classes', 'classes');
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

const setKey = (classNames) => classNames.join('\u001f');

async function samplesOf(store, classNames) {
  return done(store.index('classes').getAll(setKey(classNames)));
}

/** Save a PNG labelled `label` (a class name); returns how many samples that class now has. */
export async function saveSample(classNames, label, png) {
  const db = await open();
  try {
    const data = new Uint8Array(await png.arrayBuffer());
    const store = db.transaction(STORE, 'readwrite').objectStore(STORE);
    const existing = (await samplesOf(store, classNames)).filter((s) => s.label === label);
    const n = existing.reduce((max, s) => Math.max(max, s.n), 0) + 1;
    await done(store.add({ classes: setKey(classNames), label, n, data, saved: Date.now() }));
    return existing.length + 1;
  } finally {
    db.close();
  }
}

/** Samples per class name (every class listed). */
export async function countSamples(classNames) {
  const db = await open();
  try {
    const store = db.transaction(STORE).objectStore(STORE);
    const counts = Object.fromEntries(classNames.map((name) => [name, 0]));
    for (const sample of await samplesOf(store, classNames)) counts[sample.label] = (counts[sample.label] || 0) + 1;
    return counts;
  } finally {
    db.close();
  }
}

/** Every sample of these classes as a zip Blob: <class>/<n>.png. */
export async function samplesZip(classNames) {
  const db = await open();
  try {
    const samples = await samplesOf(db.transaction(STORE).objectStore(STORE), classNames);
    samples.sort((a, b) => classNames.indexOf(a.label) - classNames.indexOf(b.label) || a.n - b.n);
    return { count: samples.length, blob: zip(samples.map((s) => ({ name: `${folderName(s.label)}/${s.n}.png`, data: s.data }))) };
  } finally {
    db.close();
  }
}

export async function deleteSamples(classNames) {
  const db = await open();
  try {
    const store = db.transaction(STORE, 'readwrite').objectStore(STORE);
    for (const sample of await samplesOf(store, classNames)) await done(store.delete(sample.id));
  } finally {
    db.close();
  }
}
