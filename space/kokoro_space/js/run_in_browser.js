// The Space's in-browser mode (kokoro_space/browser.py): download each variant, build an
// onnxruntime-web session, run the server's calls, play the audio, and answer with the
// waveform, durations and timings as JSON for the server to compare with its own run.
async (planJson) => {
  const chooseBackend = __CHOOSE_BACKEND__;
  const box = document.querySelector("#browser-players");
  const say = (html) => { if (box) box.insertAdjacentHTML("beforeend", html); };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  let plan;
  try {
    plan = JSON.parse(planJson || "{}");
  } catch (err) {
    return JSON.stringify({ error: "the server's plan is not JSON" });
  }
  if (box) box.innerHTML = "";
  if (!plan.variants || !plan.variants.length) return JSON.stringify({ results: [] });
  const backend = await chooseBackend(navigator);
  const ua = navigator.userAgentData?.brands?.find((b) => !/Not.A.Brand/i.test(b.brand));
  const browser = ua ? `${ua.brand} ${ua.version}` : (navigator.userAgent.match(/(Firefox|Chrome|Safari)\/\d+/) || ["browser"])[0];
  let ort;
  try {
    ort = await import(backend === "webgpu" ? plan.ort.webgpu : plan.ort.wasm);
    ort.env.wasm.wasmPaths = plan.ort.dir;
    // WASM threads need a cross-origin isolated page (kokoro_space/isolation.py); up to 4,
    // where onnxruntime-web's own gain levels off
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated
      ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
  } catch (err) {
    return JSON.stringify({ error: `onnxruntime-web did not load (${String(err.message || err)})` });
  }
  const toBase64 = (f32) => {
    const u8 = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
    let s = "";
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const wavUrl = (f32, rate) => {
    const view = new DataView(new ArrayBuffer(44 + f32.length * 2));
    const text = (o, t) => [...t].forEach((c, i) => view.setUint8(o + i, c.charCodeAt(0)));
    text(0, "RIFF"); view.setUint32(4, 36 + f32.length * 2, true); text(8, "WAVEfmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true);
    view.setUint16(32, 2, true); view.setUint16(34, 16, true); text(36, "data");
    view.setUint32(40, f32.length * 2, true);
    f32.forEach((x, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, x)) * 32767, true));
    return URL.createObjectURL(new Blob([view], { type: "audio/wav" }));
  };
  // plan.stream: each sentence plays as soon as it is synthesized, variant after variant
  let audio = null;
  let playAt = 0;
  if (plan.stream) {
    try {
      audio = new AudioContext({ sampleRate: plan.sample_rate });
    } catch (err) {
      audio = null; // no audio output: the players below still work
    }
  }
  const stream = (f32) => {
    if (!audio) return;
    try {
      const buffer = audio.createBuffer(1, f32.length, plan.sample_rate);
      buffer.copyToChannel(f32, 0);
      const source = audio.createBufferSource();
      source.buffer = buffer;
      source.connect(audio.destination);
      playAt = Math.max(playAt, audio.currentTime);
      source.start(playAt);
      playAt += buffer.duration;
    } catch (err) {
      audio = null;
    }
  };
  const results = [];
  for (const v of plan.variants) {
    const threads = backend === "wasm" ? ort.env.wasm.numThreads : 0;
    const label = threads > 1 ? `wasm, ${threads} threads` : backend;
    const r = { name: v.name, backend: label, browser };
    let session = null;
    try {
      let t0 = performance.now();
      const response = await fetch(v.url);
      if (!response.ok) throw new Error(`download failed: HTTP ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      r.download_s = (performance.now() - t0) / 1000;
      r.bytes = bytes.length;
      t0 = performance.now();
      const providers = backend === "webgpu" ? ["webgpu", "wasm"] : ["wasm"];
      session = await ort.InferenceSession.create(bytes, { executionProviders: providers });
      r.session_s = (performance.now() - t0) / 1000;
      const waves = [];
      const durations = [];
      t0 = performance.now();
      for (const call of plan.calls) {
        const feeds = {
          [v.io.input_ids]: new ort.Tensor("int64", BigInt64Array.from(call.ids.map((x) => BigInt(x))), [1, call.ids.length]),
          [v.io.style]: new ort.Tensor("float32", Float32Array.from(call.style), [1, call.style.length]),
          [v.io.speed]: new ort.Tensor("float32", Float32Array.from([plan.speed]), [1]),
        };
        const out = await session.run(feeds);
        const piece = Float32Array.from(out[v.io.waveform].data);
        waves.push(piece);
        stream(piece);
        if (out[v.io.duration]) durations.push(...Array.from(out[v.io.duration].data, Number));
        if (r.first_audio_s === undefined) r.first_audio_s = (performance.now() - t0) / 1000;
      }
      r.synth_s = (performance.now() - t0) / 1000;
      const wave = new Float32Array(waves.reduce((n, w) => n + w.length, 0));
      let at = 0;
      for (const w of waves) { wave.set(w, at); at += w.length; }
      // test hook (tests/test_space_browser.py garbles one variant to check the flagging);
      // nothing on the Space sets it
      if (globalThis.__kokoroAlterOutput) globalThis.__kokoroAlterOutput(v.name, wave);
      r.wave = toBase64(wave);
      r.durations = durations;
      const audio_s = wave.length / plan.sample_rate;
      say(`<div class="browser-run"><b>${esc(v.name)}</b> in your browser (${esc(label)}): ` +
        `download ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${r.download_s.toFixed(2)} s, ` +
        `session ${r.session_s.toFixed(2)} s, synthesis ${r.synth_s.toFixed(2)} s for ` +
        `${audio_s.toFixed(2)} s of audio (RTF ${(r.synth_s / audio_s).toFixed(3)}), first audio ` +
        `after ${r.first_audio_s.toFixed(2)} s<br><audio controls src="${wavUrl(wave, plan.sample_rate)}"></audio></div>`);
    } catch (err) {
      r.error = String(err && err.message ? err.message : err).split("\n")[0].slice(0, 300);
      say(`<div class="browser-run"><b>${esc(v.name)}</b>: failed in your browser: ${esc(r.error)}</div>`);
    } finally {
      if (session) await session.release();
    }
    results.push(r);
  }
  return JSON.stringify({ results, calls: plan.calls.length });
}
