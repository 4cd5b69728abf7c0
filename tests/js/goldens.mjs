// What the node tests of the page's number reading share: reading a gzipped golden file the Python
// side wrote (tests/js/make_number_fixture.py), its base64 float32 arrays, and its grey fields as
// the RGBA pixels a canvas's getImageData would hold.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** The golden file at `path`, or an error saying how to write it (`command`). */
export function loadGoldens(path, command) {
  if (!existsSync(path)) throw new Error(`${path}: no golden readings; write them with: ${command}`);
  return JSON.parse(gunzipSync(readFileSync(path)).toString('utf8'));
}

/** A Float32Array from little-endian float32 bytes in base64. */
export function floats(base64) {
  const bytes = Buffer.from(base64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/** RGBA pixels of a grey field, as a canvas's getImageData would hold them. */
export function rgba({ grey, width, height }) {
  const values = Buffer.from(grey, 'base64');
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < values.length; i++) data.set([values[i], values[i], values[i], 255], i * 4);
  return { data, width, height };
}
