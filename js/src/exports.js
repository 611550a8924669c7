// @ts-check
/** The public surface both entry points share (the encoder, the errors, the contract's constants). @module */
export { Encoder } from "./encoder.js";
export {
  ArtifactError, ArtifactNotFoundError, InputFormatError, InputTooLongError, InputTypeError, RosbertaError, TaskError, VariantError,
} from "./errors.js";
export { FORMAT_VERSION, VARIANTS } from "./manifest.js";
export { WASM_MAX_MODEL_BYTES } from "./select.js";
export { verify } from "./verify.js";
export const VERSION = "0.1.0";
