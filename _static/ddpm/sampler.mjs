// ddpm_lite.sampling, ddpm_lite.guidance, DPM-Solver++(2M) and the straight-path steps of
// ddpm_lite.solvers, and the flow-map steps of ddpm_lite.flow_map in JavaScript, for the page
// "Generate in your browser".
// Same symbols as the package: alpha_bar, x0_pred, sigma_ts, eps, nu, u. A state x_t is a Float32Array of
// the whole batch (B * 1 * 28 * 28 values); every image of a batch is at the same code index t (for a
// flow model, at the same straight-path time r). The schedule's alpha_bars come from the package
// (mnist_ddpm.json), never recomputed here.

// sampling.ddim_timesteps: num_steps evenly spaced code indices from T-1 down to 0. Python's round()
// rounds halves to even; Math.round rounds them up, so halves are mended.
export function ddimTimesteps(T, numSteps) {
  if (!(Number.isInteger(numSteps) && 1 <= numSteps && numSteps <= T)) {
    throw new RangeError(`num_steps must be in [1, ${T}] (T=${T}), got ${numSteps}`);
  }
  const steps = new Set();
  for (let i = 0; i < numSteps; i++) steps.add(roundHalfEven(T - 1 - (i * T) / numSteps));
  return [...steps].sort((a, b) => b - a);
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// sampling.alpha_bar_at: alpha_bar at t_prev, with alpha_bar = 1 at t_prev = -1 (the data).
export function alphaBarAt(alphaBars, tPrev) {
  return tPrev >= 0 ? alphaBars[tPrev] : 1;
}

// sampling.ddim_update (Song et al. 2021, eq. 12; the book's eq. ddim-step):
//   x0_pred  = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)
//   sigma_ts = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t))
//                  * sqrt(1 - alpha_bar_t / alpha_bar_prev)
//   x_prev   = sqrt(alpha_bar_prev) * x0_pred
//              + sqrt(1 - alpha_bar_prev - sigma_ts^2) * eps + sigma_ts * noise
// With clipDenoised, x0_pred is clipped to [-1, 1] and eps recomputed from it.
export function ddimUpdate(
  alphaBars, xt, t, alphaBarPrev, eps, eta, noise, clipDenoised,
) {
  const alphaBar = alphaBars[t];
  const ratio = (1 - alphaBarPrev) / (1 - alphaBar);
  const sigmaTs = eta * Math.sqrt(ratio * (1 - alphaBar / alphaBarPrev));
  const epsScale = Math.sqrt(Math.max(1 - alphaBarPrev - sigmaTs ** 2, 0));
  const xPrev = new Float32Array(xt.length);
  const x0Pred = new Float32Array(xt.length);
  for (let i = 0; i < xt.length; i++) {
    let x0 = (xt[i] - Math.sqrt(1 - alphaBar) * eps[i]) / Math.sqrt(alphaBar);
    let e = eps[i];
    if (clipDenoised) {
      x0 = Math.min(Math.max(x0, -1), 1);
      e = (xt[i] - Math.sqrt(alphaBar) * x0) / Math.sqrt(1 - alphaBar);
    }
    x0Pred[i] = x0;
    const stepNoise = eta > 0 ? sigmaTs * noise[i] : 0;
    xPrev[i] = Math.sqrt(alphaBarPrev) * x0 + epsScale * e + stepNoise;
  }
  return { xPrev, x0Pred };
}

// guidance.classifier_free_guidance: eps_hat = eps(x_t, t, null) + scale * (eps(x_t, t, y) - eps(x_t, t, null)).
// At scale 1 (0) only the conditional (unconditional) prediction is computed, as in the package.
// condModel(xt, t, y) is async: (Float32Array, int, Int32Array) -> Float32Array.
export function classifierFreeGuidance(condModel, y, nullLabel, scale) {
  if (!(scale >= 0)) throw new RangeError(`scale must be >= 0, got ${scale}`);
  const nulls = new Int32Array(y.length).fill(nullLabel);
  if (scale === 1) return (xt, t) => condModel(xt, t, y);
  if (scale === 0) return (xt, t) => condModel(xt, t, nulls);
  return async (xt, t) => {
    const both = await condModel(concat(xt, xt), t, concat(y, nulls));
    const half = xt.length;
    const eps = new Float32Array(half);
    for (let i = 0; i < half; i++) eps[i] = both[half + i] + scale * (both[i] - both[half + i]);
    return eps;
  };
}

function concat(a, b) {
  const out = new a.constructor(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// sampling.ddim_trajectory_from: yield x_t (at code index tStart), then the state after
// each of numSteps steps, the last at t = -1. noise is a noise source, as in
// ddpm_lite.noise: noise.randn(n), one draw per step when eta > 0, none otherwise.
export async function* ddimTrajectoryFrom(
  epsModel, alphaBars, xt, tStart, noise, numSteps, eta, clipDenoised,
) {
  if (!(eta >= 0)) throw new RangeError(`eta must be >= 0, got ${eta}`);
  const steps = ddimTimesteps(tStart + 1, numSteps);
  yield { t: steps[0], xt, x0Pred: null };
  for (let k = 0; k < steps.length; k++) {
    const t = steps[k];
    const tPrev = k + 1 < steps.length ? steps[k + 1] : -1;
    const z = eta > 0 ? noise.randn(xt.length) : null;
    const eps = await epsModel(xt, t);
    const alphaBarPrev = alphaBarAt(alphaBars, tPrev);
    const out = ddimUpdate(alphaBars, xt, t, alphaBarPrev, eps, eta, z, clipDenoised);
    xt = out.xPrev;
    yield { t: tPrev, xt, x0Pred: out.x0Pred };
  }
}

// noise.GeneratorNoise's part in the browser: a seeded source of N(0, 1) draws (mulberry32 uniforms,
// Box-Muller). Not torch's generator: one seed here and in Python gives different digits; the agreement
// check replays Python's noise instead.
export class SeededNormal {
  constructor(seed) {
    this.state = seed >>> 0;
  }
  uniform() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return (((z ^ (z >>> 14)) >>> 0) + 0.5) / 4294967296; // in (0, 1): log() below stays finite
  }
  randn(n) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(this.uniform()));
      const angle = 2 * Math.PI * this.uniform();
      out[i] = radius * Math.cos(angle);
      if (i + 1 < n) out[i + 1] = radius * Math.sin(angle);
    }
    return out;
  }
}

// noise.RecordedNoise: the draws of a recorded Python run, replayed in order (x_T first, then one per step).
export class RecordedNoise {
  constructor(draws) {
    this.draws = draws;
    this.next = 0;
  }
  randn(n) {
    const draw = this.draws[this.next++];
    if (!draw || draw.length !== n) throw new Error(`recorded noise ${this.next - 1} missing or not of ${n} values`);
    return Float32Array.from(draw);
  }
}

// interpolation.slerp: sin((1 - lam) theta) / sin(theta) a + sin(lam theta) / sin(theta) b
// for one example, theta the angle between a and b as vectors; where theta is ~0 the
// weights tend to 1 - lam and lam (lerp).
export function slerp(a, b, lam) {
  let dot = 0, normA = 0, normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  const cos = dot / Math.max(Math.sqrt(normA) * Math.sqrt(normB), Number.MIN_VALUE);
  const theta = Math.acos(Math.min(Math.max(cos, -1), 1));
  const small = theta < 1e-4;
  const wa = small ? 1 - lam : Math.sin((1 - lam) * theta) / Math.sin(theta);
  const wb = small ? lam : Math.sin(lam * theta) / Math.sin(theta);
  return Float32Array.from(a, (v, i) => wa * v + wb * b[i]);
}

// diffusion.q_sample: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (the book's eq. fwd-marginal).
export function qSample(alphaBars, x0, t, eps) {
  const out = new Float32Array(x0.length);
  for (let i = 0; i < x0.length; i++) out[i] = Math.sqrt(alphaBars[t]) * x0[i] + Math.sqrt(1 - alphaBars[t]) * eps[i];
  return out;
}

// solvers.solver_timesteps with spacing "logsnr": numSteps distinct code indices from
// tStart (default T - 1) down to 0, evenly spaced in
// lambda = 0.5 log(alpha_bar / (1 - alpha_bar)), each the nearest index (the first of a
// tie, as torch's argmin). In float64 like the package, with the targets made as
// torch.linspace makes them (evenGrid), so the indices are the package's. At T = 1000 the grid fits at most 38 steps.
export function logSnrTimesteps(alphaBars, numSteps, tStart = alphaBars.length - 1) {
  const T = alphaBars.length;
  if (!(Number.isInteger(tStart) && 0 <= tStart && tStart < T)) {
    throw new RangeError(`t_start must be in [0, ${T - 1}], got ${tStart}`);
  }
  const most = tStart + 1;
  if (!(Number.isInteger(numSteps) && 1 <= numSteps && numSteps <= most)) {
    throw new RangeError(`num_steps must be in [1, ${most}], got ${numSteps}`);
  }
  const key = [];
  for (let t = 0; t <= tStart; t++) {
    key.push(0.5 * Math.log(alphaBars[t] / (1 - alphaBars[t])));
  }
  const steps = new Set();
  for (const target of evenGrid(key[tStart], key[0], numSteps)) {
    let nearest = 0;
    for (let t = 1; t <= tStart; t++) {
      if (Math.abs(key[t] - target) < Math.abs(key[nearest] - target)) nearest = t;
    }
    steps.add(nearest);
  }
  const sorted = [...steps].sort((a, b) => b - a);
  if (sorted.length < numSteps) {
    throw new RangeError(
      `num_steps=${numSteps} with spacing 'logsnr' rounds to only ${sorted.length} ` +
        `distinct time steps below t_start=${tStart}; use fewer`,
    );
  }
  return sorted;
}

// solvers._alpha_std_lambda: alpha = sqrt(alpha_bar), std = sqrt(1 - alpha_bar) and
// the log-SNR lambda = log(alpha / std); at the data (alpha_bar = 1) std = 0 and
// lambda = +Infinity.
function alphaStdLambda(alphaBar) {
  if (alphaBar >= 1) return [1, 0, Infinity];
  const alpha = Math.sqrt(alphaBar);
  const std = Math.sqrt(1 - alphaBar);
  return [alpha, std, Math.log(alpha / std)];
}

// solvers._predict, its x0_pred: (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t),
// with clipDenoised clipped to [-1, 1].
function predictX0(alphaBar, xt, eps, clipDenoised) {
  const x0Pred = new Float32Array(xt.length);
  for (let i = 0; i < xt.length; i++) {
    const x0 = (xt[i] - Math.sqrt(1 - alphaBar) * eps[i]) / Math.sqrt(alphaBar);
    x0Pred[i] = clipDenoised ? Math.min(Math.max(x0, -1), 1) : x0;
  }
  return x0Pred;
}

// solvers.dpm_solver_update (Lu et al. 2022), orders 1 and 2: one step from t to s < t.
//   h = lambda_s - lambda_t,  x_s = (std_s / std_t) x_t - alpha_s (e^-h - 1) D
//   order 1: D = x0_t (DDIM);  order 2: D = x0_t + (x0_t - x0_prev) / (2 r),
//   r = (lambda_t - lambda_prev) / h.  To the data (alpha_bar_s = 1): x0_t itself.
// x0Preds: newest first; lambdas: where each was made. Coefficients in float64.
export function dpmSolverUpdate(xt, alphaBarT, alphaBarS, x0Preds, lambdas) {
  const order = x0Preds.length;
  if (order !== 1 && order !== 2) {
    throw new RangeError(`order must be 1 or 2, got ${order}`);
  }
  const [, stdT, lambdaT] = alphaStdLambda(alphaBarT);
  const [alphaS, stdS, lambdaS] = alphaStdLambda(alphaBarS);
  if (stdS === 0) {
    if (order !== 1) throw new RangeError("the step to the data has order 1 only");
    return x0Preds[0];
  }
  const h = lambdaS - lambdaT;
  const phi1 = Math.expm1(-h); // e^-h - 1, accurate for small h
  const [a, b] = [stdS / stdT, alphaS * phi1];
  const m0 = x0Preds[0];
  const xs = new Float32Array(xt.length);
  if (order === 1) {
    for (let i = 0; i < xt.length; i++) xs[i] = a * xt[i] - b * m0[i];
    return xs;
  }
  const r0 = (lambdaT - lambdas[1]) / h;
  const m1 = x0Preds[1];
  for (let i = 0; i < xt.length; i++) {
    xs[i] = a * xt[i] - b * (m0[i] + 0.5 * ((m0[i] - m1[i]) / r0));
  }
  return xs;
}

// solvers.dpm_solver_trajectory_from: yield x_t (at code index tStart), then the state
// after each of numSteps DPM-Solver++ steps on the log-SNR grid, the last at t = -1:
// numSteps network calls. Step k (from 0) has order min(order, k + 1), the last (to
// the data) order 1. It draws no noise: only x_t is random.
export async function* dpmSolverTrajectoryFrom(
  epsModel, alphaBars, xt, tStart, numSteps, order, clipDenoised,
) {
  if (order !== 1 && order !== 2) {
    throw new RangeError(`order must be 1 or 2, got ${order}`);
  }
  const steps = logSnrTimesteps(alphaBars, numSteps, tStart);
  yield { t: steps[0], xt, x0Pred: null };
  let x0Preds = [];
  let lambdas = [];
  for (let k = 0; k < steps.length; k++) {
    const t = steps[k];
    const s = k + 1 < steps.length ? steps[k + 1] : -1;
    const eps = await epsModel(xt, t);
    const x0Pred = predictX0(alphaBars[t], xt, eps, clipDenoised);
    x0Preds = [x0Pred, ...x0Preds].slice(0, order);
    lambdas = [alphaStdLambda(alphaBars[t])[2], ...lambdas].slice(0, order);
    const used = s === -1 ? 1 : Math.min(order, k + 1);
    xt = dpmSolverUpdate(
      xt,
      alphaBars[t],
      alphaBarAt(alphaBars, s),
      x0Preds.slice(0, used),
      lambdas.slice(0, used),
    );
    yield { t: s, xt, x0Pred };
  }
}

// objectives.path_coefficients on flow matching's straight path: a = 1 - r, b = r, so
//   x_r = (1 - r) x0 + r eps   (r = 0 the data, r = 1 the noise).
export function straightSample(x0, r, eps) {
  return Float32Array.from(x0, (v, i) => (1 - r) * v + r * eps[i]);
}

// solvers._flow_predict: from nu = eps - x0 and x_r = (1 - r) x0 + r eps,
//   x0_pred = x_r - r nu;  with clipDenoised, x0_pred is clipped to [-1, 1] and
//   nu made again from it: eps = (x_r - (1 - r) x0_pred) / r, nu = eps - x0_pred.
export function flowPredict(r, x, nu, clipDenoised) {
  const x0Pred = new Float32Array(x.length);
  const nuOut = clipDenoised ? new Float32Array(x.length) : nu;
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i] - r * nu[i];
    x0Pred[i] = clipDenoised ? Math.min(Math.max(x0, -1), 1) : x0;
    if (clipDenoised) nuOut[i] = (x[i] - (1 - r) * x0Pred[i]) / r - x0Pred[i];
  }
  return { nu: nuOut, x0Pred };
}

// solvers.heun_update: one step of dx/dr = nu from r to s: Euler's x + (s - r) nu_r,
// or, given nuS (the slope at the Euler point), Heun's with the mean of both slopes.
export function heunUpdate(x, r, s, nuR, nuS) {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const slope = nuS ? 0.5 * (nuR[i] + nuS[i]) : nuR[i];
    out[i] = x[i] + (s - r) * slope;
  }
  return out;
}

// solvers.flow_trajectory_from: yield x at rStart, then the state after each of
// numSteps steps of dx/dr = nu_theta(x, r) on the even grid from rStart to 0: Euler's
// (numSteps network calls) or Heun's, the last step Euler's (2 numSteps - 1 calls).
// The grid is made in float64 as torch.linspace makes it. It draws no noise.
export async function* flowTrajectoryFrom(
  velocityModel, x, rStart, numSteps, method, clipDenoised,
) {
  if (method !== "euler" && method !== "heun") {
    throw new RangeError(`method must be one of ('euler', 'heun'), got '${method}'`);
  }
  if (!(Number.isInteger(numSteps) && numSteps >= 1)) {
    throw new RangeError(`num_steps must be >= 1, got ${numSteps}`);
  }
  if (!(rStart > 0 && rStart <= 1)) {
    throw new RangeError(`r_start must be in (0, 1], got ${rStart}`);
  }
  const times = evenGrid(rStart, 0, numSteps + 1);
  yield { t: times[0], xt: x, x0Pred: null };
  for (let k = 0; k < numSteps; k++) {
    const [r, s] = [times[k], times[k + 1]];
    const first = flowPredict(r, x, await velocityModel(x, r), clipDenoised);
    let nuS = null;
    if (method === "heun" && s > 0) {
      const xEuler = heunUpdate(x, r, s, first.nu, null);
      nuS = flowPredict(s, xEuler, await velocityModel(xEuler, s), clipDenoised).nu;
    }
    x = heunUpdate(x, r, s, first.nu, nuS);
    yield { t: s, xt: x, x0Pred: first.x0Pred };
  }
}

// torch.linspace(start, end, n) in float64: its first half from the start, the rest
// from the end, as torch's kernel makes them (its vectorised loop can differ in the last
// bit, 1e-16).
export function evenGrid(start, end, n) {
  if (n === 1) return [start];
  const step = (end - start) / (n - 1);
  const half = Math.floor(n / 2);
  return Array.from({ length: n }, (_, i) => (i < half ? start + step * i : end - step * (n - 1 - i)));
}

// flow_map.flow_map_trajectory: yield x_1 (r = 1), then x after each of numSteps calls
// on the even grid down to r = 0: each step x_s = x_r - (r - s) u_theta(x_r, s, r), an
// Euler step (heunUpdate) whose slope is the average velocity. uModel(x, s, r) is
// async. Nothing is clipped and no x0_pred is made, as in the package; it draws no
// noise.
export async function* flowMapTrajectory(uModel, x1, numSteps) {
  if (!(Number.isInteger(numSteps) && numSteps >= 1)) {
    throw new RangeError(`num_steps must be >= 1, got ${numSteps}`);
  }
  const times = evenGrid(1, 0, numSteps + 1);
  let x = x1;
  yield { t: times[0], xt: x, x0Pred: null };
  for (let k = 0; k < numSteps; k++) {
    const [r, s] = [times[k], times[k + 1]];
    x = heunUpdate(x, r, s, await uModel(x, s, r), null);
    yield { t: s, xt: x, x0Pred: null };
  }
}
