"""Print models/weights/TRAINING.md from the training records inside the shipped weights files.

Usage, from the repository root: python benchmarks/training_report.py > models/weights/TRAINING.md
"""
import sys

from models import shipped_models

lines = ["# How the shipped weights were made", "",
         "Each `.safetensors` file here carries its full training record in its metadata",
         "(`models.load_weights(path).training`); this page restates it. All runs used the",
         "`sesr train` command below on the 291 classic SR training images (T91 and the 200",
         "BSDS300 training images, \"BSD200\"), never on the evaluation sets. Every 20th image",
         "(15 images, listed in each record) is held out for the validation PSNR. Training ran on",
         "the CPU with PyTorch 2.13.0 on a 2-core x86_64 machine (threads and sharing per run below).",
         "In the commands, DATA is the folder that holds the image sets.", ""]
for model in shipped_models():
    d, t = model.descriptor, model.training
    ev = t.get("evaluation", {})
    lines += [f"## {d.variant} ×{d.scale} (`{model.path.name}`)", "",
              f"- command: `{t['command'].replace('../shared/datasets/', 'DATA/')}`",
              f"- data: {', '.join(t['data'])}; {t['train_images']} training images, "
              f"{t.get('train_images_used', t['train_images'])} of them large enough for {t['lr_patch']}×{t['lr_patch']} LR patches",
              f"- steps: {t['steps']:,} of batch {t['batch']}, {t['optimizer']}, {t['loss']}",
              f"- expansion width p: {t['expansion']}; LR images: {t['lr_images']}",
              f"- initialised from: {t.get('init_from') or 'random (variance-preserving normal)'}",
              f"- wall time: {t['wall_time_s'] / 60:.0f} minutes"
              + (f" on {t['wall_time_note']}" if t.get("wall_time_note") else ""),
              f"- speed: {t['steps_per_s_median']:.2f} steps/s (median over 50-step intervals, "
              f"{t['threads']} torch thread{'s' if t['threads'] > 1 else ''})"
              if t.get("steps_per_s_median") else "- speed: not recorded",
              f"- validation PSNR (held-out luma, {d.scale}-pixel border cut): {t['validation_psnr']:.3f} dB at the end, "
              f"best {t['validation_best']['psnr']:.3f} dB at step {t['validation_best']['step']:,}"]
    points = {p["step"]: p["psnr"] for p in t["validation_curve"]}  # older records repeat the last step
    curve = ", ".join(f"{step:,}: {psnr:.2f}" for step, psnr in points.items())
    lines += [f"- validation curve (step: dB): {curve}"]
    if ev:
        cells = "; ".join(f"{name} {v['psnr']:.2f} dB / SSIM {v['ssim']:.4f}" for name, v in ev.items())
        lines += [f"- test sets (measured once, after training): {cells}",
                  f"  (`{t['evaluation_command']}`)"]
    lines.append("")
lines += ["## Recipe choices and their measured effect", "",
          "Kept from the SESR reference code: L1 loss on luma in [0, 1], Adam, batch 32, 64×64 LR",
          "patches at ×2, random flips and 90° rotations, and ×4 networks initialised from the",
          "trained ×2 network except the last block. Changed, each with what it did here:",
          "",
          "- Schedule: the reference code trains 300 epochs of 1,600 steps (480,000 steps) at a",
          "  constant 2e-4 with AMSGrad. A CPU run here affords 10,000-30,000 steps, so the learning",
          "  rate decays from 5e-4 to 1e-5 on a cosine. Most of the gain comes early: SESR-M5 ×2",
          "  validation PSNR was 30.64 dB at step 8,000, 30.75 at 16,000 and 30.80 at 30,000.",
          "- ×4 initialisation from ×2 (measured): SESR-M3 ×4 started from the M3 ×2 network reached",
          "  25.93, 25.97, 26.00 and 26.00 dB at steps 500, 1,000, 2,000 and 2,500; the same",
          "  command from random weights (`runs/m3-x4-random`, stopped at 2,500) reached 25.47,",
          "  25.49, 25.66 and 25.81 dB, so the initialisation is worth 0.2-0.5 dB at equal steps.",
          "- ×4 patches are 48×48 LR (the reference uses 50×50): 227 of the 276 training images are",
          "  at least 48 LR pixels on each side at ×4.",
          "- Larger patches late in training (measured on SESR-M7 ×2): 1,500 more steps from the",
          "  finished 12,000-step network with 96×96 LR patches and the learning rate decaying from",
          "  1e-4 to 1e-5 raised validation PSNR from 30.690 to 30.708 dB; the shipped M7 ×2 is that",
          "  network, chosen on validation PSNR. The test sets moved from 36.98 / 32.71 / 31.56 to",
          "  37.00 / 32.71 / 31.57 dB (Set5 / Set14 / BSD100).",
          "- One torch thread per run and two runs side by side: SESR-M5 ×2 trains at about 5.5",
          "  steps/s on one thread and 8 steps/s on two, so two one-thread runs finish more steps.",
          "  The speed line of each run above is its median over 50-step intervals; it varies with",
          "  what else ran on the machine.",
          "- Expansion width p (the linear blocks' inner channel count during training): 256 for",
          "  every variant. The reference code's README gives 64 for M11 and XL; here p = 64 and",
          "  p = 256 left a randomly initialised M11 on the same plateau (below), and p = 256 lets a",
          "  trained M7 start an M11. The collapsed network has the same shape for any p.",
          "- M11 and XL grown from a trained smaller network (measured): SESR-M11 ×2 from random",
          "  weights (p = 64, 6,000 steps) stalled at 29.38 dB validation PSNR at step 500, 29.63",
          "  at 2,000 and 29.78 at 6,000, and scored 35.34 dB on Set5, below SESR-M3 ×2's 36.84. A lower learning",
          "  rate (2e-4: 29.55 dB, 1e-4: 29.36 dB at 1,500 steps) or p = 256 (29.66 dB at 2,750",
          "  steps) stayed on that plateau. `--init-from` of a shallower network appends identity",
          "  blocks (project conv zero, PReLU slope 1), so the M11 starts out computing the M7's",
          "  output: M11 ×2 from the shipped M7 ×2 (30.708 dB) measured 30.696 dB at step 500",
          "  and 30.764 dB at 6,000; M11 ×4 from M7 ×4 (26.167 dB) ended at 26.175 dB (best",
          "  26.177). XL widens M11 from 16 to 32 channels with the new channels unused at the",
          "  start: XL ×4 from M11 ×4 went from 26.175 to 26.239 dB in 5,000 steps, and XL ×2",
          "  from M11 ×2 from 30.764 to 30.844 dB in 3,500 steps. 1,000 more M11 ×2 steps on",
          "  96×96 patches at 1e-4 (`runs/m11-x2-ft`) ended at 30.761 dB, so the 6,000-step",
          "  network ships.",
          "- Warm-up after `--init-from`: Adam's first steps move every weight by about the",
          "  learning rate whatever its gradient, and a linear block adds up p such moves in each",
          "  collapsed tap. Starting XL ×2 from an M11 ×2 checkpoint at a constant 2e-4, the L1",
          "  loss on 64 fixed training patches went from 0.0125 to 0.0473 after one step and took about 80 steps",
          "  to come back; with the learning rate ramped up over 500 steps it fell from the first",
          "  step on. `sesr train` therefore warms up for 500 steps after `--init-from`",
          "  (`--warmup`); the XL runs used it. The earlier runs with `--init-from` (every ×4",
          "  run, the M7 ×2 continuation and M11) had no warm-up: add `--warmup 0` to their",
          "  commands to reproduce them. The ramp multiplies the cosine schedule, so the peak rate",
          "  is slightly below `--lr`.",
          "",
          "## Known limits", "",
          "- Training uses zero padding inside each patch, while `sesr upscale` mirrors the image",
          "  border. On the M5 ×4 weights, mirroring cost 0.02-0.03 dB of benchmark PSNR and",
          "  removes edge seams of up to 12 levels on flat images; a loss computed only on the",
          "  valid interior of each patch would train for the mirrored case directly.",
          "- The published SESR numbers come from DIV2K (800 images); these weights see 291.",
          "- SESR-M11 and SESR-XL trained from random weights with this recipe stall (above); the",
          "  shipped ones are grown from M7. Their runs are short (M11 6,000 steps, XL 3,500 at ×2",
          "  and 5,000 at ×4, 0.9-1.6 steps/s on one thread for XL), and validation PSNR was",
          "  still rising slowly at the end.", ""]
sys.stdout.write("\n".join(lines))
