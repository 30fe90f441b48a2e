"""Data-free KD (paper 002): the maths of prompt diversification, checked by hand.

Style dictionary, squared spherical distance, Mix-Prompt mixing and λ ~ Beta(1, 1), token
statistics and V* = μ + e·ε·σ, the injected text forward (== encode_text for a real token),
InfoNCE, letter shuffling, and that contrastive learning spreads the prompts.
"""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest
import torch

from edgeclip.errors import UserError


# -- style dictionary --------------------------------------------------------------------------
def test_shipped_style_dictionary_is_table_8() -> None:
    from edgeclip.distill.datafree.styles import load_styles

    styles = load_styles()
    # Table 8's text gives 87 phrases (the paper says 86; see the note in styles.yaml).
    assert len(styles.styles) == 87
    for phrase in ("image", "Midcentury", "Art Nouveau", "Claude Monet", "weird bananas", "pixel_style", "charcoal"):
        assert phrase in styles.styles
    # The paper kept PACS's domain names out of the dictionary.
    assert not any(s.lower() in ("photo", "art painting", "cartoon", "sketch") for s in styles.styles)


def test_excluding_a_test_domain_drops_whole_words_only() -> None:
    from edgeclip.distill.datafree.styles import StyleDictionary, contains_word, exclude_domain_words, load_styles

    kept, dropped = exclude_domain_words(load_styles(), ["digits"])
    assert dropped == ["blurry"] and "blurry" not in kept and len(kept) == 86
    assert contains_word("old photo", "photo") and not contains_word("photorealism", "photo")
    assert contains_word("Pen and Ink", "ink") and not contains_word("pink", "ink")
    toy = StyleDictionary(["art painting style", "photorealism", "sketchy", "sketch"], {"pacs": ["sketch", "art painting"]})
    assert exclude_domain_words(toy, ["pacs"]) == (["photorealism", "sketchy"], ["art painting style", "sketch"])
    with pytest.raises(UserError, match="unknown test domain 'pac'"):
        exclude_domain_words(toy, ["pac"])


@pytest.mark.parametrize("text,message", [
    ("styles: [a, b\n  - c: [", "is not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping with a 'styles' list"),
    ("styles: []\n", "non-empty list"),
    ("styles: [a, a, b]\n", "more than once"),
    ("styles: [a, b]\ntest_domains: {x: notalist}\n", "test_domains"),
])
def test_a_style_file_that_does_not_parse_is_one_user_error(tmp_path, text: str, message: str) -> None:
    from edgeclip.distill.datafree.styles import load_styles

    path = tmp_path / "styles.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_styles(path)


# -- distances and mixing ---------------------------------------------------------------------
def test_squared_spherical_distance_by_hand() -> None:
    from edgeclip.distill.datafree.common import squared_spherical_distance

    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0, 2.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    # orthogonal: chord √2 → 2·asin(√2/2)² = 2·(π/4)²; equal: 0; opposite: 2·(π/2)²; 45°: 2·asin(sin(π/8))² = 2·(π/8)²
    expected = torch.tensor([2 * (math.pi / 4) ** 2, 0.0, 2 * (math.pi / 2) ** 2, 2 * (math.pi / 8) ** 2])
    assert torch.allclose(squared_spherical_distance(x, y), expected, atol=1e-5)


def test_mix_prompt_is_a_convex_combination_then_normalised() -> None:
    from edgeclip.distill.datafree.prompts import mix_embeddings

    t1 = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t2 = torch.tensor([[0.0, 1.0], [0.6, 0.8]])
    mixed = mix_embeddings(t1, t2, torch.tensor([0.25, 0.9]))
    # 0.25·(1,0) + 0.75·(0,1) = (0.25, 0.75) → / √(0.625); equal inputs stay put.
    assert torch.allclose(mixed[0], torch.tensor([0.25, 0.75]) / math.sqrt(0.625))
    assert torch.allclose(mixed[1], torch.tensor([0.6, 0.8]))


def _fake_teacher(dim: int = 4) -> SimpleNamespace:
    """encode_text = a fixed random direction per distinct prompt (enough for the plan's bookkeeping)."""
    table: dict[str, torch.Tensor] = {}

    def encode_text(prompts, normalize=True):
        rows = []
        for p in prompts:
            if p not in table:
                table[p] = torch.nn.functional.normalize(torch.randn(dim, generator=torch.Generator().manual_seed(len(table))), dim=0)
            rows.append(table[p])
        return torch.stack(rows)

    return SimpleNamespace(encode_text=encode_text, table=table)


def _datafree_cfg(**changes):
    from edgeclip.config import DataFreeConfig

    cfg = DataFreeConfig()
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_mix_plan_draws_two_different_styles_and_uniform_lambda() -> None:
    from edgeclip.distill.datafree.prompts import build_prompt_plan, mix_embeddings
    from edgeclip.distill.datafree.styles import exclude_domain_words, load_styles

    teacher = _fake_teacher()
    cfg = _datafree_cfg(style_template="{} in the style of {}", exclude_domains=["digits"])
    plan = build_prompt_plan("mix", teacher, ["cat", "dog"], 400, cfg, seed=3)
    allowed = set(exclude_domain_words(load_styles(), ["digits"])[0])
    lams = torch.tensor([row["lambda"] for row in plan.rows])
    assert len(plan.rows) == 800 and plan.targets.shape == (800, 4)
    assert all(r["styles"][0] != r["styles"][1] and set(r["styles"]) <= allowed for r in plan.rows)
    assert all(r["prompt"] == f"{r['class']} in the style of {r['styles'][0]}" for r in plan.rows)
    # Beta(1, 1) is uniform on (0, 1): mean 1/2, variance 1/12.
    assert 0 < float(lams.min()) and float(lams.max()) < 1
    assert abs(float(lams.mean()) - 0.5) < 0.03 and abs(float(lams.var()) - 1 / 12) < 0.01
    row = plan.rows[7]
    t1, t2 = teacher.table[row["prompt"]], teacher.table[row["prompt_2"]]
    assert torch.allclose(plan.targets[7], mix_embeddings(t1[None], t2[None], torch.tensor([row["lambda"]]))[0], atol=1e-6)
    again = build_prompt_plan("mix", _fake_teacher(), ["cat", "dog"], 400, cfg, seed=3)
    assert [r["lambda"] for r in again.rows] == [r["lambda"] for r in plan.rows]


# -- Random-Prompt ----------------------------------------------------------------------------
def test_token_statistics_by_hand() -> None:
    from edgeclip.distill.datafree.text_encoder import token_statistics

    mu, sigma = token_statistics(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    # mu = (2, 4); sigma² = mean(C²) − mu² = (5 − 4, 20 − 16) = (1, 4)
    assert torch.allclose(mu, torch.tensor([2.0, 4.0])) and torch.allclose(sigma, torch.tensor([1.0, 2.0]))


def test_pseudo_token_is_mean_plus_e_eps_sigma() -> None:
    from edgeclip.distill.datafree.prompts import sample_pseudo_tokens

    mu, sigma = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.1, 0.2, 0.3])
    vectors = sample_pseudo_tokens(mu, sigma, 10.0, [7, 8])
    eps = torch.randn(3, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(vectors[0], mu + 10.0 * eps * sigma)
    assert not torch.allclose(vectors[0], vectors[1])
    assert torch.allclose(sample_pseudo_tokens(mu, sigma, 0.0, [7])[0], mu)


def test_injected_text_forward_equals_encode_text_for_a_real_token(tiny_teacher) -> None:
    from edgeclip.distill.datafree.text_encoder import PLACEHOLDER, PseudoTokenEncoder, encode_text_injected

    encoder = PseudoTokenEncoder(tiny_teacher)
    prompts = [f"a photo of a cat in the style of {PLACEHOLDER}", f"dog {PLACEHOLDER} art"]
    tokens, positions = encoder.tokenize(prompts)
    table = tiny_teacher.model.token_embedding.weight
    # V* = the placeholder's own row → exactly encode_text.
    own = table[tokens[torch.arange(2), positions]]
    assert torch.allclose(encoder(prompts, own), tiny_teacher.encode_text(prompts), atol=1e-6)
    # V* = the row of another word → encode_text of the prompt with that word.
    other = tiny_teacher.tokenize(["pencil"])[0][1]
    replaced = [p.replace(PLACEHOLDER, "pencil") for p in prompts]
    assert torch.allclose(encoder(prompts, table[other].expand(2, -1)), tiny_teacher.encode_text(replaced), atol=1e-6)
    # Without vectors it is encode_text; unnormalised too.
    raw = encode_text_injected(tiny_teacher.model, tokens, normalize=False)
    assert torch.allclose(raw, tiny_teacher.model.encode_text(tokens), atol=1e-6)
    # Gradients reach V* and nothing else changes.
    vectors = own.detach().clone().requires_grad_(True)
    encoder(prompts, vectors).sum().backward()
    assert vectors.grad is not None and float(vectors.grad.abs().sum()) > 0


def test_a_prompt_that_cuts_off_the_pseudo_word_is_a_user_error(tiny_teacher) -> None:
    from edgeclip.distill.datafree.text_encoder import PLACEHOLDER, PseudoTokenEncoder, text_tower

    encoder = PseudoTokenEncoder(tiny_teacher)  # context length 12
    with pytest.raises(UserError, match="cut off"):
        encoder.tokenize(["one two three four five six seven eight nine ten eleven " + PLACEHOLDER])
    with pytest.raises(UserError, match="more than once"):
        encoder.tokenize([f"{PLACEHOLDER} and {PLACEHOLDER}"])
    assert not encoder.fits("one two three four five six seven eight nine ten eleven " + PLACEHOLDER)
    with pytest.raises(UserError, match="token-embedding table"):
        text_tower(torch.nn.Linear(2, 2))


def test_random_plan_records_seeds_that_reproduce_each_target(tiny_teacher) -> None:
    from edgeclip.distill.datafree.prompts import build_prompt_plan, sample_pseudo_tokens
    from edgeclip.distill.datafree.text_encoder import PseudoTokenEncoder, token_statistics

    cfg = _datafree_cfg(style_template="a {} in the style of {}", random_scale=10.0)
    plan = build_prompt_plan("random", tiny_teacher, ["cat", "dog"], 3, cfg, seed=0)
    mu, sigma = token_statistics(tiny_teacher.model.token_embedding.weight)
    row = plan.rows[4]
    vector = sample_pseudo_tokens(mu, sigma, 10.0, [row["v_seed"]])
    assert torch.allclose(plan.pseudo_tokens[4], vector[0])
    assert torch.allclose(plan.targets[4], PseudoTokenEncoder(tiny_teacher)([row["prompt"]], vector)[0], atol=1e-6)
    assert len({r["v_seed"] for r in plan.rows}) == 6


# -- Contrastive-Prompt -----------------------------------------------------------------------
def test_info_nce_by_hand() -> None:
    from edgeclip.distill.datafree.contrastive import info_nce

    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    bank = torch.tensor([[-1.0, 0.0]])
    tau = 0.5
    # anchor 0: positive cos 0.6, negatives: anchor 1 (cos 0), bank (cos −1)
    l0 = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.0) + math.exp(-1 / tau)))
    # anchor 1: positive cos 1, negatives: anchor 0 (cos 0), bank (cos 0)
    l1 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * math.exp(0.0)))
    assert float(info_nce(a, p, bank, tau)) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    l0_nobank = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + 1.0))
    l1_nobank = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 1.0))
    assert float(info_nce(a, p, None, tau)) == pytest.approx((l0_nobank + l1_nobank) / 2, rel=1e-6)


def test_positive_shuffles_only_the_frozen_template_words() -> None:
    from edgeclip.distill.datafree.contrastive import MemoryBank, shuffled_prompt

    rng = random.Random(0)
    texts = {shuffled_prompt("a photo of {} in the style of {}.", "seven", "sks", rng) for _ in range(20)}
    assert len(texts) > 1
    for text in texts:
        assert text.startswith("a photo of seven ") and text.endswith(" sks.")
        middle = text[len("a photo of seven "):-len(" sks.")].split(" ")
        assert [sorted(w) for w in middle] == [sorted(w) for w in "in the style of".split(" ")]
    bank = MemoryBank(3)
    bank.push(torch.ones(2, 2))
    bank.push(torch.zeros(2, 2))
    assert bank.get().shape == (3, 2) and float(bank.get()[:2].sum()) == 0  # newest first, oldest dropped


def test_contrastive_learning_spreads_the_prompts_and_leaves_the_teacher_alone(tiny_teacher) -> None:
    from edgeclip.distill.datafree.prompts import build_prompt_plan

    cfg = _datafree_cfg(style_template="a {} in the style of {}", contrastive_epochs=15, contrastive_batch=4,
                        contrastive_bank=8, contrastive_lr=0.1)
    before = {k: v.clone() for k, v in tiny_teacher.model.state_dict().items()}
    random_plan = build_prompt_plan("random", tiny_teacher, ["cat", "dog"], 4, cfg, seed=0)
    learned = build_prompt_plan("contrastive", tiny_teacher, ["cat", "dog"], 4, cfg, seed=0, progress=False)
    loss = learned.info["contrastive_loss"]
    assert loss["epochs"] == 15 and loss["last"] < loss["first"]
    assert learned.info["target_cosine_within_class"] < random_plan.info["target_cosine_within_class"]
    assert [r["v_seed"] for r in learned.rows] == [r["v_seed"] for r in random_plan.rows]  # same start
    assert all(torch.equal(v, tiny_teacher.model.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in tiny_teacher.model.parameters())  # restored after freezing
