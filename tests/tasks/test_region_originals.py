"""The FG-CLIP v1 preset and the FG-CLIP 2 defaults give each original's loss on a fixed batch.

The references are written here from the originals' code, not from clipadapt's functions:
FG-CLIP v1 (360CVGroup/FG-CLIP at b7b3342, ``fgclip/model/clip_strc/fgclip.py``): global ITC on long
and short captions, ``0.1 * pairwise_contrastive_loss`` over every valid box, ``0.5 *
hard_contrastive_loss`` (11-way CE) over the boxes with negatives. FG-CLIP 2 (HEAD,
``fgclip2/model/strcs/fgclip2.py``): ``0.2 *`` region ITC, ``0.1 *`` TIC (top 10), ``0.5 *
hard_contrastive_total_loss`` = ``0.6 *`` the batch CE in both directions over the hard boxes' phrases
and negatives + ``3 *`` the 11-way CE + ``0.4 *`` the CMR hinge with the previous step's threshold.
The global terms are CLIP's InfoNCE in both (FG-CLIP 2's sigmoid loss needs SigLIP: a documented
difference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipadapt.models.dense import encode_regions
from clipadapt.tasks import RegionTextAlignment
from clipadapt.tasks.region import FGCLIP_V1_LOSS_WEIGHTS

COLOURS, SHAPES = ["red", "blue", "green", "yellow"], ["circle", "star", "square"]


def _batch() -> tuple[torch.Tensor, dict]:
    """3 images x 4 boxes = 12 boxes (FG-CLIP 2's TIC takes the top 10 of 11 others); 10 negatives for
    the boxes that have some (the originals' fixed 11-way layout), none for two boxes."""
    generator = torch.Generator().manual_seed(5)
    images = torch.randn(3, 3, 64, 64, generator=generator)
    boxes, phrases, negatives = [], [], []
    for i in range(3):
        corners = torch.rand(4, 2, 2, generator=generator) * 60
        boxes.append(torch.cat([corners.min(1).values, corners.max(1).values + 4], dim=1))
        phrases.append([f"a {COLOURS[(i + j) % 4]} {SHAPES[j % 3]} number {i * 4 + j}" for j in range(4)])
        # 10 negatives (the words of the phrase reversed, numbered); boxes (0, 1) and (2, 3) have none
        negatives.append(
            [
                [] if (i, j) in {(0, 1), (2, 3)} else [" ".join(reversed(p.split())) + f" {k}" for k in range(10)]
                for j, p in enumerate(phrases[-1])
            ]
        )
    samples = dict(
        boxes=boxes,
        phrases=phrases,
        hard_negatives=negatives,
        caption=["a photo of a red circle", "a photo of a blue star", "a photo of a green square"],
        long_caption=["A long caption. " * 3 + str(i) for i in range(3)],
    )
    return images, samples


def _features(task: RegionTextAlignment, images: torch.Tensor, samples: dict) -> dict:
    clip = task.clip
    encode = lambda texts: clip.encode_text(task.tokenize(texts), normalize=True)  # noqa: E731
    flat_phrases = [p for ps in samples["phrases"] for p in ps]
    flat_negs = [n for ns in samples["hard_negatives"] for n in ns]
    hard = torch.tensor([len(n) > 0 for n in flat_negs])
    return dict(
        image=clip.encode_image(images, normalize=True),
        short=encode(samples["caption"]),
        long=encode(samples["long_caption"]),
        regions=encode_regions(clip, images, samples["boxes"], normalize=True),
        phrases=encode(flat_phrases),
        hard=hard,
        # [H, 11, D]: the phrase then its 10 negatives, the originals' hard_texts layout
        hard_texts=torch.stack([encode([p, *n]) for p, n in zip(flat_phrases, flat_negs) if n]),
    )


def _itc(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    targets = torch.arange(image.shape[0])
    return (F.cross_entropy(scale * image @ text.T, targets) + F.cross_entropy(scale * text @ image.T, targets)) / 2


def _pairwise(regions: torch.Tensor, texts: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    labels = torch.eye(regions.shape[0])  # soft targets, as pairwise_contrastive_loss
    per_image = log_scale.exp() * regions @ texts.T
    per_text = log_scale.exp() * texts @ regions.T
    return (F.cross_entropy(per_text, labels) + F.cross_entropy(per_image, labels)) / 2


def _hard_11_way(regions: torch.Tensor, hard_texts: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    predict = log_scale.exp() * torch.einsum("bp,bdp->bd", regions, hard_texts)
    return F.cross_entropy(predict, torch.zeros(regions.shape[0], dtype=torch.long))


def _tic(texts: torch.Tensor) -> torch.Tensor:
    n = texts.shape[0]
    similarity = (torch.ones(n, n) - torch.eye(n)) * (texts @ texts.T)
    similarity = torch.where(similarity > 0.95, torch.zeros(n, n), similarity)
    values = similarity.topk(10, dim=1).values
    return torch.log(torch.exp(values).sum(dim=1)).mean()  # PNTextLoss


def _total_hard(regions, hard_texts, thresholds, log_scale):
    """FG-CLIP 2's hard_contrastive_total_loss and get_cmr_loss; returns (loss, next threshold)."""
    scale = log_scale.exp()
    gt, da = hard_texts[:, 0], hard_texts[:, 1:]
    all_texts = torch.cat([gt, da.reshape(-1, gt.shape[-1])])
    per_image = scale * regions @ all_texts.T
    per_text = scale * gt @ regions.T
    da_logits = scale * (da @ regions.unsqueeze(-1)).squeeze(-1)
    labels = torch.arange(regions.shape[0])
    loss = (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
    pair = _hard_11_way(regions, hard_texts, log_scale)
    gt_similarity = per_image.diag().reshape(-1, 1).expand(da_logits.shape)
    cmr = F.relu(thresholds + da_logits - gt_similarity).mean()
    mask = da_logits != 0
    next_threshold = gt_similarity.mean() - (da_logits * mask).sum() / mask.sum()
    return 0.6 * loss + 3 * pair + 0.4 * cmr, float(next_threshold.clamp(0, 10))


def _check(losses: dict, expected: torch.Tensor) -> None:
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    # fp32 sums of a dozen cross-entropies of size ~1-10: a few ulp each
    torch.testing.assert_close(total, expected, rtol=2e-5, atol=2e-5)


def test_fgclip_v1_preset_gives_v1_loss() -> None:
    torch.manual_seed(0)
    task = RegionTextAlignment("tiny-vit", loss_weights=FGCLIP_V1_LOSS_WEIGHTS, max_logit_scale=None).train()
    images, samples = _batch()
    with torch.no_grad():
        losses = task(images, samples, mode="loss")
        f = _features(task, images, samples)
        scale = task.clip.logit_scale.exp()
        expected = _itc(f["image"], f["long"], scale) + _itc(f["image"], f["short"], scale)
        expected = expected + 0.1 * _pairwise(f["regions"], f["phrases"], task.region_logit_scale)
        expected = expected + 0.5 * _hard_11_way(f["regions"][f["hard"]], f["hard_texts"], task.hard_logit_scale)
    _check(losses, expected)


def test_fgclip2_defaults_give_fgclip2_loss_with_the_previous_steps_threshold() -> None:
    torch.manual_seed(2)  # random weights under which the first step's margin is positive (about 3)
    task = RegionTextAlignment("tiny-vit", max_logit_scale=None).train()
    images, samples = _batch()
    threshold = 0.0  # FG-CLIP 2's self.thresholds at the first step
    for step in range(2):
        with torch.no_grad():
            losses = task(images if step == 0 else images.flip(-1), samples, mode="loss")
            f = _features(task, images if step == 0 else images.flip(-1), samples)
            scale = task.clip.logit_scale.exp()
            expected = _itc(f["image"], f["long"], scale) + _itc(f["image"], f["short"], scale)
            expected = expected + 0.2 * _pairwise(f["regions"], f["phrases"], task.region_logit_scale)
            expected = expected + 0.1 * _tic(f["phrases"])
            hard, threshold_next = _total_hard(
                f["regions"][f["hard"]], f["hard_texts"], threshold, task.hard_logit_scale
            )
            expected = expected + 0.5 * hard
        _check(losses, expected)
        assert step == 1 or 0.5 < threshold_next < 9.5  # the second step really uses a margin, unclamped
        threshold = threshold_next
