# Zero-shot classification with the tiny base CLIP on the synthetic world's unseen "warm" domain (a warm
# orange light shifts every colour): the first row of the prompt-learning base-to-novel tables.
#   python tools/test.py configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py
_base_ = [
    "../_base_/models/prompt_classifier_tiny-vit.py",
    "../_base_/datasets/synthetic_fewshot_warm.py",
    "../_base_/default_runtime.py",
]
test_cfg = dict()
