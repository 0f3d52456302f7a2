// ddpm_lite.sampling and ddpm_lite.guidance in JavaScript, for the page "Generate in your browser".
// Same symbols as the package: alpha_bar, x0_pred, sigma_ts, eps. A state x_t is a Float32Array of
// the whole batch (B * 1 * 28 * 28 values); every image of a batch is at the same code index t.
// The schedule's alpha_bars come from the package (mnist_ddpm.json), never recomputed here.

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
