// The errors the page shows as they are: each message says what was expected and what was found.

export class ModelLoadError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ModelLoadError';
  }
}
