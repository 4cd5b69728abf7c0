// Pillow's resampling of float ('F') images, as Image.resize and Image.reduce compute it, so the
// page's 28x28 equals the Python runtime's (Pillow's libImaging/Resample.c and Reduce.c).
//
// An image here is {data: Float32Array, width, height}, row-major.

const lanczos = {
  support: 3,
  weight(x) {
    return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  },
};

const box = {
  support: 0.5,
  weight(x) {
    return x > -0.5 && x <= 0.5 ? 1 : 0;
  },
};

// Pillow's bilinear_filter: a triangle of support 1 (the number reader's line image, js/sequence.js).
const bilinear = {
  support: 1,
  weight(x) {
    const a = Math.abs(x);
    return a < 1 ? 1 - a : 0;
  },
};

export const LANCZOS = lanczos;
export const BOX = box;
export const BILINEAR = bilinear;

function sinc(x) {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

// For each output index: the first input index, how many inputs, and their normalised weights
// (double precision, as Pillow's precompute_coeffs).
function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ss = 1 / filterScale;
  const result = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const weights = new Float64Array(Math.max(count, 0));
    let total = 0;
    for (let x = 0; x < count; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      weights[x] = w;
      total += w;
    }
    if (total !== 0) for (let x = 0; x < count; x++) weights[x] /= total;
    result.push({ start: xmin, weights });
  }
  return result;
}

function horizontal(image, outWidth, filter) {
  const { data, width, height } = image;
  const coeffs = coefficients(width, outWidth, filter);
  const out = new Float32Array(outWidth * height); // float32 storage, as Pillow's temporary image
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let xx = 0; xx < outWidth; xx++) {
      const { start, weights } = coeffs[xx];
      let sum = 0;
      for (let k = 0; k < weights.length; k++) sum += data[row + start + k] * weights[k];
      out[y * outWidth + xx] = sum;
    }
  }
  return { data: out, width: outWidth, height };
}

function vertical(image, outHeight, filter) {
  const { data, width, height } = image;
  const coeffs = coefficients(height, outHeight, filter);
  const out = new Float32Array(width * outHeight);
  for (let yy = 0; yy < outHeight; yy++) {
    const { start, weights } = coeffs[yy];
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (let k = 0; k < weights.length; k++) sum += data[(start + k) * width + x] * weights[k];
      out[yy * width + x] = sum;
    }
  }
  return { data: out, width, height: outHeight };
}

/** Image.resize((outWidth, outHeight), filter) of a float image: horizontal pass, then vertical. */
export function resize(image, outWidth, outHeight, filter = lanczos) {
  let result = image;
  if (outWidth !== image.width) result = horizontal(result, outWidth, filter);
  if (outHeight !== image.height) result = vertical(result, outHeight, filter);
  if (result === image) result = { ...image, data: Float32Array.from(image.data) };
  return result;
}

/** Image.reduce(factor): the mean of each factor x factor block; edge blocks average the pixels they hold.
 *  Each block's sum runs over its rows, top to bottom, each left to right (Pillow's order), row by
 *  row of the image into one sum per block of the band. */
export function reduce(image, factor) {
  const { data, width, height } = image;
  const outWidth = Math.ceil(width / factor);
  const outHeight = Math.ceil(height / factor);
  const out = new Float32Array(outWidth * outHeight);
  const band = new Float64Array(outWidth);
  for (let by = 0; by < outHeight; by++) {
    const y0 = by * factor;
    const y1 = Math.min(y0 + factor, height);
    band.fill(0);
    for (let y = y0; y < y1; y++) {
      const row = y * width;
      for (let bx = 0, x = 0; bx < outWidth; bx++) {
        const x1 = Math.min(x + factor, width);
        let sum = band[bx];
        for (; x < x1; x++) sum += data[row + x];
        band[bx] = sum;
      }
    }
    for (let bx = 0; bx < outWidth; bx++) {
      const columns = Math.min(bx * factor + factor, width) - bx * factor;
      out[by * outWidth + bx] = band[bx] / ((y1 - y0) * columns);
    }
  }
  return { data: out, width: outWidth, height: outHeight };
}
