// @ts-check
/**
 * rosberta-onnx for Node: ai-forever/ru-en-RoSBERTa sentence embeddings from an exported artifact folder, with
 * onnxruntime-node (default) or onnxruntime-web's WASM build, and `@huggingface/tokenizers`.
 *
 *     import { Encoder } from "rosberta-onnx";
 *     const enc = await Encoder.load("models/ru-en-rosberta");
 *     const [q] = await enc.encode(["Сколько программистов нужно?"], { task: "search_query" });
 * @module
 */
import { setDefaultPlatform } from "./encoder.js";
import { nodePlatform } from "./node.js";

setDefaultPlatform(nodePlatform);

export * from "./exports.js";

