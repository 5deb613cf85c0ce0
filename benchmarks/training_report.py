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
lines += ["## Known limits", "",
          "- Training uses zero padding inside each patch, while `sesr upscale` mirrors the image",
          "  border. On the M5 ×4 weights, mirroring cost 0.02-0.03 dB of benchmark PSNR and",
          "  removes edge seams of up to 12 levels on flat images; a loss computed only on the",
          "  valid interior of each patch would train for the mirrored case directly.",
          "- The published SESR numbers come from DIV2K (800 images); these weights see 291.", ""]
sys.stdout.write("\n".join(lines))
