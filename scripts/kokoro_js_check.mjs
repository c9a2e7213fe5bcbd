// Load a staged repo folder in kokoro-js (transformers.js), offline, and speak once per dtype.
//   npm install kokoro-js@1.2.1   (with ONNXRUNTIME_NODE_INSTALL_CUDA=skip)
//   node scripts/kokoro_js_check.mjs MODELS_DIR fp32 fp16 q8 ...   (repo staged at MODELS_DIR/me/kokoro)
import { KokoroTTS } from "kokoro-js";
import { env } from "@huggingface/transformers";
env.allowRemoteModels = false;
env.localModelPath = process.argv[2];
const dtypes = process.argv.slice(3);
for (const dtype of dtypes) {
  const t0 = Date.now();
  const tts = await KokoroTTS.from_pretrained("me/kokoro", { dtype, device: "cpu" });
  const audio = await tts.generate("Hello from Kokoro.", { voice: "af_heart" });
  let peak = 0; for (const x of audio.audio) peak = Math.max(peak, Math.abs(x));
  console.log(`${dtype}: ${audio.audio.length} samples at ${audio.sampling_rate} Hz, peak ${peak.toFixed(4)}, ${Date.now() - t0} ms`);
}
