"""Golden values for the DistillCLIP loss terms, computed by hand on a 3×4 example.

Teacher: images e1, e2, e3; texts e1, e2, e2. Student (before normalization): images 2e1, 3e3,
e1+e2; texts 4e2, e2, 5e4. After normalization the student's third image is (e1+e2)/√2.
"""

from __future__ import annotations

import math

import pytest
import torch

from edgeclip.distill.losses import LOSSES, WeightedLoss, WeightedTerm
from edgeclip.errors import UserError

E = torch.eye(4)
TEACHER_IMAGE = torch.stack([E[0], E[1], E[2]])
TEACHER_TEXT = torch.stack([E[0], E[1], E[1]])
STUDENT_IMAGE = torch.stack([2 * E[0], 3 * E[2], E[0] + E[1]])
STUDENT_TEXT = torch.stack([4 * E[1], E[1], 5 * E[3]])
BATCH = {"student_image": STUDENT_IMAGE, "student_text": STUDENT_TEXT, "teacher_image": TEACHER_IMAGE, "teacher_text": TEACHER_TEXT}
A = 1 / math.sqrt(2)


def term(name: str, **params) -> float:
    total, parts = WeightedLoss([WeightedTerm(name, 1.0, params)])(BATCH)
    return float(total)


def test_inter_by_hand() -> None:
    # teacher map rows [1,0,0],[0,1,1],[0,0,0]; student rows [0,0,0],[0,0,0],[a,a,0]
    # differences 1, 1, 1, a, a -> 1 + 1 + 1 + 1/2 + 1/2 = 4
    assert term("inter") == pytest.approx(4.0, abs=1e-6)
    assert term("inter", reduction="mean") == pytest.approx(4.0 / 9, abs=1e-6)


def test_intra_image_by_hand() -> None:
    # teacher: identity; student: [[1,0,a],[0,1,0],[a,0,1]] -> two off-diagonal a's: 2 * 1/2 = 1
    assert term("intra_image") == pytest.approx(1.0, abs=1e-6)


def test_intra_text_by_hand() -> None:
    # teacher [[1,0,0],[0,1,1],[0,1,1]], student [[1,1,0],[1,1,0],[0,0,1]] -> four entries differ by 1
    assert term("intra_text") == pytest.approx(4.0, abs=1e-6)


def test_contrastive_by_hand() -> None:
    # logits (scale 1) = student inter map [[0,0,0],[0,0,0],[a,a,0]]
    i2t = (2 * math.log(3) + math.log(1 + 2 * math.exp(A))) / 3
    t2i = (2 * math.log(2 + math.exp(A)) + math.log(3)) / 3
    assert term("contrastive", logit_scale=1.0) == pytest.approx(0.5 * (i2t + t2i), abs=1e-6)
    batch = dict(BATCH, student_logit_scale=torch.tensor(1.0))
    total, _ = WeightedLoss([WeightedTerm("contrastive", 1.0)])(batch)
    assert float(total) == pytest.approx(0.5 * (i2t + t2i), abs=1e-6)


def test_feature_by_hand() -> None:
    # image: e1 vs e1 -> 0, e3 vs e2 -> 2, (e1+e2)/√2 vs e3 -> 2: mean 4/3; text: 2, 0, 2: mean 4/3
    batch = dict(BATCH, student_image_projected=STUDENT_IMAGE, student_text_projected=STUDENT_TEXT)
    total, _ = WeightedLoss([WeightedTerm("feature", 1.0)])(batch)
    assert float(total) == pytest.approx(8.0 / 3, abs=1e-6)


def test_paper_objective_is_weighted_sum() -> None:
    loss = WeightedLoss([WeightedTerm("inter", 1.0), WeightedTerm("intra_image", 1.0), WeightedTerm("intra_text", 0.5)])
    total, parts = loss(BATCH)
    assert parts == pytest.approx({"inter": 4.0, "intra_image": 1.0, "intra_text": 4.0}, abs=1e-6)
    assert float(total) == pytest.approx(4.0 + 1.0 + 2.0, abs=1e-6)


def test_terms_are_registered_with_inputs_and_teacher_flag() -> None:
    assert LOSSES.get("inter").inputs == ("student_image", "student_text", "teacher_image", "teacher_text")
    assert LOSSES.get("contrastive").needs_teacher is False
    assert LOSSES.get("feature").needs_teacher is True


def test_gradients_flow_to_student_only() -> None:
    student = STUDENT_IMAGE.clone().requires_grad_(True)
    teacher = TEACHER_IMAGE.clone().requires_grad_(True)
    total, _ = WeightedLoss([WeightedTerm("intra_image", 1.0)])({"student_image": student, "teacher_image": teacher})
    total.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_bad_reduction_and_missing_teacher() -> None:
    with pytest.raises(UserError, match="reduction"):
        term("inter", reduction="max")
    with pytest.raises(UserError, match="teacher"):
        WeightedLoss([WeightedTerm("inter", 1.0)])({"student_image": STUDENT_IMAGE, "student_text": STUDENT_TEXT})
