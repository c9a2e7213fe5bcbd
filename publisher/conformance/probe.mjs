// The node half of probe.py: runs inside an isolated npm environment (its node_modules is
// linked beside this file; nothing of publisher). `node probe.mjs REQUEST.json` prints one
// line, PROBE {"ok": true, ...} with what came out, or {"ok": false, "error": the runtime's
// own first error line}.
//
// Kinds: "kokoro-js" (KokoroTTS.from_pretrained on a staged repo folder, offline, with the
// dtype that names the file; with "heard", each of its lines spoken and saved too),
// "onnxruntime-web" (an InferenceSession on the WASM backend in
// headless Chromium, one run with the feeds publisher prepared).
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

// onnxruntime-web's files, from the environment's node_modules linked beside this file
const DIST = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "node_modules",
  "onnxruntime-web",
  "dist",
);

function summary(audio, extra) {
  if (!audio || audio.length === 0) throw new Error("no samples came out");
  let peak = 0;
  for (const x of audio) {
    if (!Number.isFinite(x)) throw new Error("the output has NaN or infinite samples");
    peak = Math.max(peak, Math.abs(x));
  }
  return { samples: audio.length, peak, ...extra };
}

async function kokoroJs(req) {
  const { KokoroTTS } = await import("kokoro-js");
  const { env } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  env.localModelPath = req.models;
  const tts = await KokoroTTS.from_pretrained(req.name, { dtype: req.dtype, device: "cpu" });
  const audio = await tts.generate(req.text, { voice: req.voice });
  const out = summary(audio.audio, { sample_rate: audio.sampling_rate, dtype: req.dtype });
  if (req.heard) {
    // each line through kokoro-js's own phonemizer, saved as raw float32 for publisher
    const rates = [];
    for (const [k, line] of req.heard.lines.entries()) {
      const spoken = await tts.generate(line.text, { voice: line.voice });
      const samples = Float32Array.from(spoken.audio);
      fs.writeFileSync(path.join(req.heard.dir, `${k}.f32`), Buffer.from(samples.buffer));
      rates.push(spoken.sampling_rate);
    }
    fs.writeFileSync(path.join(req.heard.dir, "rates.json"), JSON.stringify(rates));
    out.heard_lines = rates.length;
  }
  return out;
}

// Serves the onnxruntime-web dist folder under /ort/ and the model under /model.onnx.
function serve(model) {
  const types = { ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
  const server = http.createServer((request, response) => {
    const url = decodeURIComponent(request.url.split("?")[0]);
    if (url === "/") {
      response.writeHead(200, { "content-type": "text/html" });
      response.end("<!doctype html><title>probe</title>");
      return;
    }
    let file = null;
    if (url === "/model.onnx") file = model;
    else if (url.startsWith("/ort/")) file = path.join(DIST, path.basename(url));
    if (!file || !fs.existsSync(file)) {
      response.writeHead(404);
      response.end();
      return;
    }
    response.writeHead(200, {
      "content-type": types[path.extname(file)] || "application/octet-stream",
    });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// In the page: load onnxruntime-web, build the session on WASM, run the feeds once.
async function runInPage(feeds) {
  const ort = await import("/ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = "/ort/";
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create("/model.onnx", {
    executionProviders: ["wasm"],
  });
  const inputs = {};
  for (const [name, f] of Object.entries(feeds)) {
    const data =
      f.type === "int64"
        ? BigInt64Array.from(f.data.map((x) => BigInt(x)))
        : f.type === "int32"
          ? Int32Array.from(f.data)
          : Float32Array.from(f.data);
    inputs[name] = new ort.Tensor(f.type, data, f.dims);
  }
  const out = await session.run(inputs);
  const first = out[session.outputNames[0]];
  const second = session.outputNames.length > 1 ? out[session.outputNames[1]] : null;
  return {
    type: first.type,
    data: Array.from(first.data),
    durations: second ? Array.from(second.data, Number) : null,
    version: ort.env.versions?.web,
  };
}

async function onnxruntimeWeb(req) {
  const { chromium } = await import("playwright-core");
  const feeds = JSON.parse(fs.readFileSync(req.feeds, "utf8"));
  const server = await serve(req.model);
  const browser = await chromium.launch({
    executablePath: req.chromium,
    args: req.chromium_args,
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    const out = await page.evaluate(runInPage, feeds).catch((err) => {
      throw new Error(String(err.message).replace(/^page\.evaluate: (Error: )?/, ""));
    });
    if (out.type !== "float32") throw new Error(`output 0 is ${out.type}, not float32`);
    const result = summary(out.data, { version: out.version });
    if (req.save) {
      fs.writeFileSync(req.save, Buffer.from(Float32Array.from(out.data).buffer));
      if (out.durations) fs.writeFileSync(req.save + ".dur.json", JSON.stringify(out.durations));
    }
    return result;
  } finally {
    await browser.close();
    server.close();
  }
}

const KINDS = { "kokoro-js": kokoroJs, "onnxruntime-web": onnxruntimeWeb };

function firstLine(err) {
  const text = String((err && err.message) || err).trim().split("\n");
  return (text[0] || "error").slice(0, 2000);
}

function answer(out) {
  console.log("PROBE " + JSON.stringify(out));
  process.exit(0);
}

// an error outside the awaited chain (a server callback, a stream) is still one answer
process.on("uncaughtException", (err) => answer({ ok: false, error: firstLine(err) }));
const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let out;
try {
  out = { ok: true, ...(await KINDS[req.kind](req)) };
} catch (err) {
  out = { ok: false, error: firstLine(err) };
}
answer(out);
