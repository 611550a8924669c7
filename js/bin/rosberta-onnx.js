#!/usr/bin/env node
// The `rosberta-onnx` command: see src/cli/main.js.
import { main } from "../src/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
