// The page "Generate in your browser": the shipped U-Net in onnxruntime-web, sampled by sampler.mjs.
// Nothing heavy loads with the page: the runtime (from jsDelivr, integrity-checked) and the model are
// fetched when the reader first presses a button.
import {
  RecordedNoise, SeededNormal, classifierFreeGuidance, ddimTimesteps, ddimTrajectoryFrom, dpmSolverTrajectoryFrom,
  evenGrid, flowMapTrajectory, flowTrajectoryFrom, logSnrTimesteps, qSample, slerp, straightSample,
} from "./sampler.mjs";

const ORT = "https://cdn.jsdelivr.net/npm/onnxruntime-web@1.30.0/dist/";
// SHA-384 of the npm package's files (npm pack onnxruntime-web@1.30.0): the browser refuses any other bytes.
const INTEGRITY = {
  "ort.wasm.min.js": "sha384-Bw6URI+Gvoadw0do7/QrSHUC9D1vCYYK5OSqChFyhyV5mzPL4oe2rOAFljAnS8Sq",
  "ort-wasm-simd-threaded.mjs": "sha384-XcXA/MtAf0WpB8e023xQH9CM7RIjiugakT7x99DIwpFf7k56BIFFcAPerIF7FDad",
  "ort-wasm-simd-threaded.wasm": "sha384-vjBJ1z7qrhkTyYsNqKeF6c7N+nOJSU94czEo+tvZcu8G75JparGq9kB+kTnEUNVM",
};
const MODELS = new URL("../models/", import.meta.url);
const GRID = 16; // digits per run, shown 4 x 4
const SAMPLER_NAMES = {
  ddim: "DDIM", "dpm-solver++": "DPM-Solver++(2M)", heun: "Heun", euler: "Euler", "flow-map": "flow-map",
};
// The three shipped models: their files, the samplers each can use (the first is the default), the steps
// slider's default and largest value, and the recorded runs of the Python samplers the check replays: file,
// sampler, and the prefix of the result's data attributes (DDIM: data-max-diff-onnx, data-same-steps,
// data-agrees; 2M: data-solver-max-diff-onnx, ...; Heun: data-flow-…; the flow map: data-one-step-…,
// data-two-steps-…).
const MODELS_ON_PAGE = {
  "mnist-flow": {
    stem: "mnist_flow",
    samplers: ["heun", "euler"],
    steps: { value: 10, max: 100 },
    references: [{ file: "mnist_flow.reference_heun.json", sampler: "heun", prefix: "flow" }],
  },
  "mnist-meanflow": {
    stem: "mnist_meanflow",
    samplers: ["flow-map"],
    steps: { value: 1, max: 4 },
    references: [
      { file: "mnist_meanflow.reference_flow_map.json", sampler: "flow-map", prefix: "oneStep" },
      { file: "mnist_meanflow.reference_flow_map_2.json", sampler: "flow-map", prefix: "twoSteps" },
    ],
  },
  "mnist-ddpm": {
    stem: "mnist_ddpm",
    samplers: ["ddim", "dpm-solver++"],
    steps: { value: 10, max: 100 },
    references: [
      { file: "mnist_ddpm.reference.json", sampler: "ddim", prefix: "" },
      { file: "mnist_ddpm.reference_dpm_solver.json", sampler: "dpm-solver++", prefix: "solver" },
    ],
  },
};

const $ = (id) => document.getElementById(id);
let runtimeLoaded = null; // {ort, threads}, after the first press
let loaded = null; // the model in use: {ort, runtime, schedule, threads, seconds, name}
const sessions = {}; // per model name, once loaded: {runtime, schedule, seconds}
let run = null; // the last run: {states, x0} (x0: the images shown before the first step, or null)

function loadScript(src, integrity) {
  return new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src, integrity, crossOrigin: "anonymous" });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src} (offline, or its integrity check failed)`));
    document.head.append(script);
  });
}

async function fetchChecked(url, options = {}) {
  const response = await fetch(url, options);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

async function loadRuntime() {
  if (runtimeLoaded) return runtimeLoaded;
  await loadScript(ORT + "ort.wasm.min.js", INTEGRITY["ort.wasm.min.js"]);
  const name = "ort-wasm-simd-threaded";
  const [glue, wasm] = await Promise.all([
    fetchChecked(ORT + name + ".mjs", { integrity: INTEGRITY[name + ".mjs"] }).then((r) => r.blob()),
    fetchChecked(ORT + name + ".wasm", { integrity: INTEGRITY[name + ".wasm"] }).then((r) => r.arrayBuffer()),
  ]);
  const ort = window.ort;
  ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([glue], { type: "text/javascript" })) };
  ort.env.wasm.wasmBinary = wasm;
  // Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages.
  const threads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.numThreads = threads;
  runtimeLoaded = { ort, threads };
  return runtimeLoaded;
}

// The chosen model (and, the first time, the runtime): loaded once per visit.
async function load() {
  const modelName = $("ddpm-model").value;
  if (!sessions[modelName]) {
    const began = performance.now();
    setStatus("loading", `Loading the runtime and the model ${modelName} (first use only)…`);
    const { stem } = MODELS_ON_PAGE[modelName];
    const [{ ort }, model, schedule] = await Promise.all([
      loadRuntime(),
      fetchChecked(new URL(stem + ".onnx", MODELS)).then((r) => r.arrayBuffer()),
      fetchChecked(new URL(stem + ".json", MODELS)).then((r) => r.json()),
    ]);
    const runtime = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
    schedule.alphaBars = Float32Array.from(schedule.alpha_bars); // float32, as the Python sampler uses them
    sessions[modelName] = { runtime, schedule, seconds: (performance.now() - began) / 1000 };
  }
  loaded = { ...runtimeLoaded, ...sessions[modelName], name: modelName };
  return loaded;
}

// The network on a batch: eps_theta(x_t, t, y) with t a code index (int64); for a flow model nu_theta(x_r, r, y)
// with r in [0, 1] (float32); for the meanflow model u_theta(x_r, s, r, y) with t = [s, r] (float32). As the
// model's file names its inputs and output.
function condModel({ ort, runtime, schedule }) {
  const size = schedule.image_size;
  const [xName, ...timeNames] = schedule.inputs.slice(0, -1);
  const yName = schedule.inputs.at(-1);
  const integer = schedule.objective === "eps";
  return async (xt, t, y) => {
    const batch = y.length;
    const times = [t].flat();
    const feeds = {
      [xName]: new ort.Tensor("float32", xt, [batch, 1, size, size]),
      [yName]: new ort.Tensor("int64", BigInt64Array.from(y, (v) => BigInt(v)), [batch]),
    };
    timeNames.forEach((name, i) => {
      feeds[name] = integer ? new ort.Tensor("int64", new BigInt64Array(batch).fill(BigInt(times[i])), [batch])
        : new ort.Tensor("float32", new Float32Array(batch).fill(times[i]), [batch]);
    });
    return (await runtime.run(feeds))[schedule.output].data;
  };
}

// flow_map.AverageVelocityNet with labels y: u(x, s, r) = u_theta(x, s, r, y), at w = 1 (one call has no second
// prediction to mix).
function averageVelocity(model, y) {
  const cond = condModel(model);
  return (x, s, r) => cond(x, [s, r], y);
}

function setStatus(state, text) {
  const status = $("ddpm-status");
  status.dataset.state = state;
  status.textContent = text;
}

function settings() {
  const digit = $("ddpm-digit").value;
  return {
    model: $("ddpm-model").value,
    sampler: $("ddpm-sampler").value,
    start: $("ddpm-start").value,
    seed: Number($("ddpm-seed").value) >>> 0,
    steps: Number($("ddpm-steps").value),
    eta: Number($("ddpm-eta").value),
    digit: digit === "any" || digit === "random" ? digit : Number(digit),
    scale: Number($("ddpm-scale").value),
    tStart: Number($("ddpm-t").value),
    from: Number($("ddpm-from").value),
    to: Number($("ddpm-to").value),
  };
}

// Pixels in [-1, 1] to grey levels, tiles of size x size in a 4-wide grid; x_t beyond [-1, 1] is clipped.
function draw(canvas, x, count, size) {
  const cols = 4;
  const rows = Math.ceil(count / cols);
  canvas.width = cols * size;
  canvas.height = rows * size;
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  for (let k = 0; k < count; k++) {
    const left = (k % cols) * size;
    const top = Math.floor(k / cols) * size;
    for (let i = 0; i < size * size; i++) {
      const grey = Math.round((Math.min(Math.max(x[k * size * size + i], -1), 1) + 1) * 127.5);
      const p = 4 * ((top + Math.floor(i / size)) * canvas.width + left + (i % size));
      image.data[p] = image.data[p + 1] = image.data[p + 2] = grey;
      image.data[p + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
}

function show(index) {
  const state = run.states[index];
  const size = loaded.schedule.image_size;
  draw($("ddpm-xt"), state.xt, GRID, size);
  // the flow map makes no x0_pred on the way: its last state, the sample, is its x_0
  const x0 = state.x0Pred ?? (run.flowMap && state.t === 0 ? state.xt : run.x0);
  if (x0) draw($("ddpm-x0"), x0, GRID, size);
  else $("ddpm-x0").getContext("2d").clearRect(0, 0, $("ddpm-x0").width, $("ddpm-x0").height);
  const t = state.t;
  const which = `state ${index} of ${run.states.length - 1}`;
  if (run.flow) {
    $("ddpm-scrub-label").textContent = t > 0 ? `${which}: x_r at r = ${t.toFixed(3)}` : `${which}: the sample x_0`;
  } else {
    $("ddpm-scrub-label").textContent = t >= 0 ? `${which}: x_t at t = ${t + 1}` : `${which}: the sample x_0`;
  }
}

let digitsFile = null;
async function testDigits() {
  digitsFile ??= await fetchChecked(new URL("mnist_test_digits.json", MODELS)).then((r) => r.json());
  return digitsFile;
}

const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

// The most steps, up to `wanted`, that DPM-Solver++'s log-SNR grid from tStart takes: beyond it two of its points
// round to the same time step (38 from t = 1000, 23 from t = 500).
function mostLogSnrSteps(alphaBars, tStart, wanted) {
  for (let n = Math.min(wanted, tStart + 1); n > 1; n--) {
    try {
      logSnrTimesteps(alphaBars, n, tStart);
      return n;
    } catch {
      // too many for the grid: try one fewer
    }
  }
  return 1;
}

// The chosen sampler from xt at tStart: DDIM (eta, its step noise from `noise`) or DPM-Solver++(2M), which draws
// no noise, one network call per step; or for a flow model Heun's or Euler's steps from r = tStart. All clip
// x0_pred to [-1, 1]. The flow map (epsModel: u(x, s, r)) starts from x_1 (tStart 1) and clips nothing.
function trajectory(sampler, epsModel, alphaBars, xt, tStart, noise, numSteps, eta, clipDenoised) {
  if (sampler === "flow-map") {
    if (tStart !== 1) throw new RangeError(`the flow map starts from x_1 (r = 1), got r = ${tStart}`);
    return flowMapTrajectory(epsModel, xt, numSteps);
  }
  if (sampler === "heun" || sampler === "euler") {
    return flowTrajectoryFrom(epsModel, xt, tStart, numSteps, sampler, clipDenoised);
  }
  if (sampler === "dpm-solver++") return dpmSolverTrajectoryFrom(epsModel, alphaBars, xt, tStart, numSteps, 2, clipDenoised);
  return ddimTrajectoryFrom(epsModel, alphaBars, xt, tStart, noise, numSteps, eta, clipDenoised);
}

// solvers.network_calls: Heun's last step is Euler's, so numSteps Heun steps call the network 2 numSteps - 1 times.
const networkCalls = (sampler, numSteps) => (sampler === "heun" ? 2 * numSteps - 1 : numSteps);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

async function generate() {
  const s = settings();
  if (!MODELS_ON_PAGE[s.model].samplers.includes(s.sampler)) {
    throw new Error(`sampler ${s.sampler} cannot run ${s.model}; its samplers: ${MODELS_ON_PAGE[s.model].samplers}`);
  }
  const { schedule } = await load();
  const size = schedule.image_size;
  const n = GRID * size * size;
  const noise = new SeededNormal(s.seed);
  const flow = schedule.objective !== "eps"; // the straight path's time r, for the flow and meanflow models
  // Noising a digit: DDPM's q(x_t | x_0) at code index t - 1 (the slider shows the paper's t = 1..T), or the
  // straight path at r = t / T.
  const noised = (x, eps) => (flow ? straightSample(x, s.tStart / schedule.T, eps)
    : qSample(schedule.alphaBars, x, s.tStart - 1, eps));
  let xt, tStart, x0 = null;
  let eta = s.eta;
  if (s.start === "digit") {
    const digits = await testDigits();
    x0 = Float32Array.from(digits.x0);
    tStart = flow ? s.tStart / schedule.T : s.tStart - 1;
    xt = noised(x0, noise.randn(n));
  } else if (s.start === "interpolate") {
    // interpolation.interpolate_via_noise: each endpoint encoded to t with its own noise, the two x_t mixed by
    // slerp at 16 values of lam, every mix decoded by a deterministic sampler (DDIM with eta = 0, DPM-Solver++, or
    // for the flow model Heun's or Euler's steps from x_r at r = t / T), so only lam changes.
    const digits = await testDigits();
    const pixels = size * size;
    const image = (k) => Float32Array.from(digits.x0.slice(k * pixels, (k + 1) * pixels));
    const [xA, xB] = [image(s.from), image(s.to)];
    tStart = flow ? s.tStart / schedule.T : s.tStart - 1;
    const xtA = noised(xA, noise.randn(pixels));
    const xtB = noised(xB, noise.randn(pixels));
    xt = new Float32Array(n);
    x0 = new Float32Array(n); // the pixel blend, for comparison with what the model decodes
    for (let k = 0; k < GRID; k++) {
      const lam = k / (GRID - 1);
      xt.set(slerp(xtA, xtB, lam), k * pixels);
      x0.set(xA.map((v, i) => (1 - lam) * v + lam * xB[i]), k * pixels);
    }
    eta = 0;
  } else {
    tStart = flow ? 1 : schedule.T - 1;
    xt = noise.randn(n);
  }
  let numSteps = flow ? s.steps : Math.min(s.steps, tStart + 1);
  let note = "";
  if (s.sampler === "dpm-solver++") {
    const most = mostLogSnrSteps(schedule.alphaBars, tStart, numSteps);
    if (most < numSteps) {
      note = ` (${s.steps} asked; DPM-Solver++'s log-SNR grid from t = ${tStart + 1} fits at most ${most} steps)`;
      numSteps = most;
    }
  }
  const samplerName = SAMPLER_NAMES[s.sampler];
  // "any": the "no label" token (the unconditional branch, w = 0); "random": each tile's digit drawn uniformly,
  // from its own seeded generator (guidance.random_labels' idea; not torch's draws), at the chosen w.
  const digitSource = new SeededNormal(s.seed + 1);
  const labels = s.digit === "any" ? new Int32Array(GRID).fill(schedule.null_label)
    : s.digit === "random" ? Int32Array.from({ length: GRID }, () => Math.floor(10 * digitSource.uniform()))
      : new Int32Array(GRID).fill(s.digit);
  const flowMap = s.sampler === "flow-map"; // its labels at w = 1; "any" is the "no label" token at w = 1
  const epsModel = flowMap ? averageVelocity(loaded, labels)
    : classifierFreeGuidance(condModel(loaded), labels, schedule.null_label, s.digit === "any" ? 0 : s.scale);
  run = { states: [], x0, flow, flowMap };
  $("ddpm-scrub").disabled = true;
  const progress = $("ddpm-progress");
  progress.max = numSteps;
  const began = performance.now();
  const states = trajectory(s.sampler, epsModel, schedule.alphaBars, xt, tStart, noise, numSteps, eta, true);
  for await (const state of states) {
    run.states.push(state);
    progress.value = run.states.length - 1;
    show(run.states.length - 1);
    const seconds = (performance.now() - began) / 1000;
    setStatus("running", `${samplerName} step ${run.states.length - 1} of ${numSteps}${note} · ${seconds.toFixed(1)} s`);
    await yieldToBrowser();
  }
  const seconds = (performance.now() - began) / 1000;
  const scrub = $("ddpm-scrub");
  Object.assign(scrub, { min: 0, max: run.states.length - 1, value: run.states.length - 1, disabled: false });
  $("ddpm-status").dataset.loadSeconds = loaded.seconds.toFixed(3);
  const calls = networkCalls(s.sampler, numSteps);
  setStatus("done", `${GRID} digits (${s.model}), ${plural(numSteps, samplerName + " step")}, ` +
    `${plural(calls, "network call")}${note}: ` +
    `${seconds.toFixed(1)} s ` +
    `(${loaded.threads} WebAssembly thread${loaded.threads > 1 ? "s" : ""}; runtime and model loaded in ${loaded.seconds.toFixed(1)} s). ` +
    "Drag the slider below the images to go back through the run.");
  $("ddpm-status").dataset.sampleSeconds = seconds.toFixed(3);
}

// Replay one recorded run (its x_T and, for DDIM, its step noise); compare the time steps and the samples.
async function replay({ file, sampler, prefix }, schedule, result) {
  const reference = await fetchChecked(new URL(file, MODELS)).then((r) => r.json());
  const name = SAMPLER_NAMES[sampler];
  setStatus("running", `Replaying the Python sampler's noise through ${name}…`);
  const labels = Int32Array.from(reference.labels);
  const flowMap = sampler === "flow-map";
  if (flowMap && reference.scale !== 1) throw new Error(`the flow map samples at w = 1, not ${reference.scale}`);
  const epsModel = flowMap ? averageVelocity(loaded, labels)
    : classifierFreeGuidance(condModel(loaded), labels, schedule.null_label, reference.scale);
  const noise = new RecordedNoise([reference.x_T, ...reference.noise]);
  const xT = noise.randn(reference.x_T.length);
  let last = null;
  const flow = sampler === "heun" || sampler === "euler" || flowMap;
  const tStart = flow ? 1 : schedule.T - 1;
  for await (const state of trajectory(sampler, epsModel, schedule.alphaBars, xT, tStart, noise,
    reference.num_steps, reference.eta, reference.clip_denoised)) last = state;
  const timesteps = sampler === "ddim" ? ddimTimesteps(schedule.T, reference.num_steps)
    : flow ? evenGrid(1, 0, reference.num_steps + 1) : logSnrTimesteps(schedule.alphaBars, reference.num_steps);
  // code indices exactly; straight-path times r to round-off (torch.linspace's last bit)
  const sameSteps = timesteps.length === reference.timesteps.length &&
    timesteps.every((t, i) => Math.abs(t - reference.timesteps[i]) <= 1e-12);
  const how = sampler === "ddim" ? `${reference.num_steps} DDIM steps, η = ${reference.eta}`
    : flow ? `${plural(reference.num_steps, name + " step")} on the straight path (even in r)`
      : `${reference.num_steps} ${name} steps (log-SNR spacing)`;
  const calls = networkCalls(sampler, reference.num_steps);
  const lines = [`Digits ${reference.labels.join(", ")}, ${how}, ${plural(calls, "network call")}, ` +
    `guidance scale ${reference.scale}; time steps ${sameSteps ? "identical" : "DIFFERENT"}.`];
  let agree = sameSteps;
  const against = { onnx: "Python sampler, this page's model file (onnxruntime)", torch: "Python sampler, PyTorch model" };
  const key = (word) => (prefix ? prefix + word[0].toUpperCase() + word.slice(1) : word);
  for (const [model, sample] of Object.entries(reference.samples)) {
    let maxDiff = 0;
    for (let i = 0; i < last.xt.length; i++) maxDiff = Math.max(maxDiff, Math.abs(last.xt[i] - sample[i]));
    const ok = maxDiff <= reference.tolerance[model];
    agree = agree && ok;
    result.dataset[key("maxDiff") + model[0].toUpperCase() + model.slice(1)] = String(maxDiff);
    lines.push(`${against[model] ?? model}: largest |x_browser − x_Python| = ${maxDiff.toExponential(2)} ` +
      `(tolerance ${reference.tolerance[model]}) ${ok ? "✓" : "✗"}`);
  }
  result.dataset[key("sameSteps")] = String(sameSteps);
  result.dataset[key("agrees")] = String(agree);
  const label = flowMap ? `${name}, ${plural(reference.num_steps, "step")}` : name; // two runs of one sampler
  return { name: label, agree, lines, browser: last.xt, python: reference.samples.torch };
}

// Replay the recorded runs of the chosen model's Python samplers and compare the samples.
async function check() {
  const { schedule, name } = await load();
  const result = $("ddpm-check-result");
  for (const key of Object.keys(result.dataset)) delete result.dataset[key]; // the last check's, maybe another model's
  const runs = [];
  for (const reference of MODELS_ON_PAGE[name].references) runs.push(await replay(reference, schedule, result));
  const agree = runs.every((r) => r.agree);
  const lines = runs.flatMap((r) => [`${r.name}:`, ...r.lines, r.agree ? "They agree." : "They DISAGREE.", ""]);
  lines.push(agree ? "The samplers agree." : "The samplers DISAGREE.");
  result.dataset.ok = String(agree);
  result.innerText = lines.join("\n");
  const size = schedule.image_size;
  const n = runs[0].browser.length;
  const all = new Float32Array(2 * n * runs.length); // per run, a row: the browser's samples, then Python's
  runs.forEach((r, k) => {
    all.set(r.browser, 2 * n * k);
    all.set(r.python, 2 * n * k + n);
  });
  draw($("ddpm-check-canvas"), all, all.length / (size * size), size);
  $("ddpm-check-caption").textContent = `per row (${runs.map((r) => r.name).join(", then ")}): the browser's two ` +
    "samples, then the Python sampler's (PyTorch model)";
  $("ddpm-check-figure").style.display = "inline-block";
  setStatus("done", "Check finished.");
}

function guarded(action) {
  return async () => {
    for (const button of document.querySelectorAll("#ddpm-live button")) button.disabled = true;
    setStatus("running", "Starting…"); // at once: whoever waits for "done" must not see the last run's
    try {
      await action();
    } catch (error) {
      setStatus("error", `Error: ${error.message}`);
      console.error(error);
    } finally {
      for (const button of document.querySelectorAll("#ddpm-live button")) button.disabled = false;
    }
  };
}

function bindOutputs() {
  for (const id of ["ddpm-steps", "ddpm-eta", "ddpm-scale", "ddpm-t"]) {
    const input = $(id);
    const output = $(id + "-value");
    const update = () => { output.textContent = input.value; };
    input.addEventListener("input", update);
    update();
  }
  // The samplers the chosen model can use: the others are disabled, and a sampler the model cannot use becomes
  // the model's default. Each model keeps its own number of steps, within its range.
  const stepsChosen = {};
  let shown = null;
  const models = () => {
    const name = $("ddpm-model").value;
    const { samplers, steps } = MODELS_ON_PAGE[name];
    for (const option of $("ddpm-sampler").options) option.disabled = !samplers.includes(option.value);
    if (!samplers.includes($("ddpm-sampler").value)) $("ddpm-sampler").value = samplers[0];
    if (shown !== name) {
      if (shown) stepsChosen[shown] = $("ddpm-steps").value;
      Object.assign($("ddpm-steps"), { max: steps.max, value: stepsChosen[name] ?? steps.value });
      $("ddpm-steps").dispatchEvent(new Event("input"));
      shown = name;
    }
    $("ddpm-check-result").innerText = ""; // the last check was of the other model
    $("ddpm-check-figure").style.display = "none";
    modes();
  };
  const modes = () => {
    // The flow map samples at w = 1 only, from noise x_1 only (flow_map.flow_map_trajectory).
    const flowMap = $("ddpm-sampler").value === "flow-map";
    $("ddpm-scale").disabled = $("ddpm-digit").value === "any" || flowMap;
    for (const option of $("ddpm-start").options) option.disabled = flowMap && option.value !== "noise";
    if (flowMap) $("ddpm-start").value = "noise";
    const start = $("ddpm-start").value;
    $("ddpm-t").disabled = start === "noise";
    $("ddpm-from").disabled = $("ddpm-to").disabled = start !== "interpolate";
    $("ddpm-eta").disabled = start === "interpolate" || $("ddpm-sampler").value !== "ddim";
  };
  $("ddpm-digit").addEventListener("change", modes);
  $("ddpm-start").addEventListener("change", modes);
  $("ddpm-sampler").addEventListener("change", modes);
  $("ddpm-model").addEventListener("change", models);
  models();
}

if (location.protocol !== "file:") {
  bindOutputs();
  $("ddpm-generate").addEventListener("click", guarded(generate));
  $("ddpm-check").addEventListener("click", guarded(check));
  $("ddpm-scrub").addEventListener("input", (event) => run && show(Number(event.target.value)));
  setStatus("idle", "Ready: press Generate (the first press downloads the runtime and the model).");
}
