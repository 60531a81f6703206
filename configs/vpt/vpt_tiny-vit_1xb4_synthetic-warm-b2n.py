# VPT (shallow, 8 tokens) on the tiny base CLIP, base-to-novel on the synthetic world's unseen "warm" domain:
# the data and schedule of the tiny MaPLe config (16 shots of the base classes, batch 4, lr 0.01, 5 epochs),
# so the prompt learners of the model zoo differ only in their plugin. The prompts are visual only, so the
# class names reach the model through CLIP's own text tower and novel classes need no learned context.
#   python tools/base2novel.py configs/vpt/vpt_tiny-vit_1xb4_synthetic-warm-b2n.py \
#       --zero-shot configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py --seeds 1 2 3
_base_ = ["../maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py"]
model = dict(plugins=[dict(type="VPT", num_tokens=8, depth=1)])
