// Drawing with a mouse, a pen or a finger (pointer events), with undo and clear.
//
// The drawing *is* its list of strokes: every change redraws them all, so a hand-drawn digit and
// the same strokes replayed by setStrokes() (tests, benchmarks) give the very same pixels.
// Strokes are light ink on a transparent canvas, as MNIST digits are light on dark; the page
// shows them over a dark background.

export const CANVAS_SIZE = 280; // bitmap pixels; CSS scales the element to the screen
export const PEN_WIDTH = 20; // about MNIST's stroke once a digit filling the pad is fitted in 20x20
export const INK = '#ffffff';

export class Sketch {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{penWidth?: number, onStroke?: () => void}} options  onStroke: called when a stroke ends
   */
  constructor(canvas, { penWidth = PEN_WIDTH, onStroke = () => {} } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext('2d', { willReadFrequently: true });
    this.penWidth = penWidth;
    this.onStroke = onStroke;
    this.strokes = []; // [{width, points: [[x, y], ...]}] in bitmap pixels
    this.active = null; // {pointerId, stroke} while a pointer draws
    this.pending = false;
    this.listen();
  }

  get empty() {
    return this.strokes.length === 0;
  }

  clear() {
    this.strokes = [];
    this.render();
  }

  undo() {
    this.strokes.pop();
    this.render();
  }

  /** Replace the drawing with these strokes ([{width, points}]), as if drawn by hand. */
  setStrokes(strokes) {
    this.strokes = strokes.map((s) => ({ width: s.width ?? this.penWidth, points: s.points.map(([x, y]) => [x, y]) }));
    this.render();
  }

  /** The canvas pixels (RGBA, unpremultiplied), what the preprocessing reads. */
  pixels() {
    return this.context.getImageData(0, 0, this.canvas.width, this.canvas.height);
  }

  /** The drawing as a PNG file (transparent background), what the collected samples hold. */
  png() {
    return new Promise((resolve, reject) =>
      this.canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the canvas could not be encoded'))), 'image/png'),
    );
  }

  render() {
    const { context: ctx, canvas } = this;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    for (const { width, points } of this.strokes) {
      ctx.lineWidth = width;
      if (points.length === 1) {
        const [x, y] = points[0];
        ctx.beginPath();
        ctx.arc(x, y, width / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(points[0][0], points[0][1]);
      for (let i = 1; i < points.length; i++) ctx.lineTo(points[i][0], points[i][1]);
      ctx.stroke();
    }
  }

  // --- pointer input -------------------------------------------------------------------------

  listen() {
    const canvas = this.canvas;
    canvas.addEventListener('pointerdown', (event) => this.down(event));
    canvas.addEventListener('pointermove', (event) => this.move(event));
    canvas.addEventListener('pointerup', (event) => this.up(event));
    canvas.addEventListener('pointercancel', (event) => this.up(event));
    // No page scroll, zoom or context menu while drawing (CSS touch-action: none does the rest).
    canvas.addEventListener('touchstart', (event) => event.preventDefault(), { passive: false });
    canvas.addEventListener('contextmenu', (event) => event.preventDefault());
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  down(event) {
    if (this.active || (event.pointerType === 'mouse' && event.button !== 0)) return;
    event.preventDefault();
    this.canvas.setPointerCapture?.(event.pointerId);
    const stroke = { width: this.penWidth, points: [this.point(event)] };
    this.strokes.push(stroke);
    this.active = { pointerId: event.pointerId, stroke };
    this.render();
  }

  move(event) {
    if (!this.active || event.pointerId !== this.active.pointerId) return;
    event.preventDefault();
    const events = event.getCoalescedEvents?.() || [];
    for (const e of events.length ? events : [event]) this.active.stroke.points.push(this.point(e));
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.render();
      });
    }
  }

  up(event) {
    if (!this.active || event.pointerId !== this.active.pointerId) return;
    this.active = null;
    this.render();
    this.onStroke();
  }
}
