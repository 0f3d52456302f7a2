"""ddpm_lite: the small, exact DDPM package that every chapter of ddpm-book runs on.

Modules, one idea each (the README's table says what each holds): the maths in
`schedules`, `gaussian`, `diffusion`, `objectives`, `noise`, `sampling`, `solvers`,
`flow_map`, `score`, `guidance`, `likelihood`, `interpolation`; the models in `unet`,
`classifier`, `noisy_classifier`, `vae`, `toy`; training in `train`, `fit`, `presets`,
`devices`, `distributed`; files in `checkpoint`, `trained`, `pretrained`, `data`,
`export`, `files`; measuring in `metrics`; display in `plotting`, `widgets`,
`diagrams`; argument checks in `_validate`; the command line in `__main__`.
Importing the package has no side effects.
"""

__version__ = "0.1.0"
