// @ts-check
/**
 * Every error this package throws on purpose, one class per failure; each message says what is wrong, why,
 * and how to fix it. The hierarchy mirrors the Python runtime's (`rosberta_onnx.errors`):
 *
 *     RosbertaError                 base of everything below
 *     ├── ArtifactError             a model folder/URL that is missing, corrupt or incompatible
 *     │   └── ArtifactNotFoundError a file or folder the artifact needs does not exist
 *     ├── VariantError              a variant that is unknown, absent, or unfit for this backend
 *     ├── TaskError                 an unknown task name (lists the valid ones)
 *     ├── InputTypeError            a text that is not a string (names index and type)
 *     ├── InputTooLongError         an over-long text with truncate: false (names index and count)
 *     └── InputFormatError          an input file the CLI can't read (names file and line)
 *
 * Every instance has a stable `code` (its class name), so callers can branch without `instanceof` across
 * module copies.
 * @module
 */

export class RosbertaError extends Error {
  /** @param {string} message @param {{ cause?: unknown }} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
    /** @type {string} */
    this.code = new.target.name;
  }
}

export class ArtifactError extends RosbertaError {}
export class ArtifactNotFoundError extends ArtifactError {}
export class VariantError extends RosbertaError {}
export class TaskError extends RosbertaError {}
export class InputTypeError extends RosbertaError {}
export class InputTooLongError extends RosbertaError {}
export class InputFormatError extends RosbertaError {}
