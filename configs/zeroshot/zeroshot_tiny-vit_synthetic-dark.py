# Zero-shot classification with the tiny base CLIP on the synthetic world's unseen "dark" domain:
# class names in the "synthetic" prompt templates, averaged (CLIP's ensembling). Evaluation only:
#   python tools/test.py configs/zeroshot/zeroshot_tiny-vit_synthetic-dark.py
_base_ = [
    "../_base_/models/prompt_classifier_tiny-vit.py",
    "../_base_/datasets/synthetic_fewshot_dark.py",
    "../_base_/default_runtime.py",
]
test_cfg = dict()
