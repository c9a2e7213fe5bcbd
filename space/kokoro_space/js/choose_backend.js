// Which onnxruntime-web backend the page uses: WebGPU when the browser offers an adapter,
// WASM otherwise (headless Chromium here, Firefox and Safari before WebGPU, ...).
async (nav) => {
  try {
    if (nav && nav.gpu && (await nav.gpu.requestAdapter())) return "webgpu";
  } catch (err) {
    // a browser that lists WebGPU but cannot give an adapter runs WASM
  }
  return "wasm";
}
