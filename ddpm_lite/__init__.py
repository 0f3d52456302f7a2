"""ddpm_lite: the small, exact DDPM package that every chapter of ddpm-book runs on.

Modules, one idea each: `schedules` (beta and its derived tensors), `gaussian` (sampling,
merging, KL, the pixel likelihood), `diffusion` (q and p_theta as pure functions),
`sampling` (the reverse loops). Importing the package has no side effects.
"""

__version__ = "0.1.0"
