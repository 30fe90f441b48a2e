"""Everything a DistillCLIP run checks and builds before training: teacher, student, pairs, loss.

All of it raises one-line UserErrors before the run directory is touched.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from edgeclip.config import Recipe
from edgeclip.distill.distillclip.losses import DUAL_ENCODER_INPUTS
from edgeclip.distill.losses import WeightedLoss, WeightedTerm, criterion_from_config
from edgeclip.errors import UserError
from edgeclip.students.registry import STUDENTS, create_student
from edgeclip.students.spec import ModelSpec
from edgeclip.teacher import ClipTeacher

TEXT_INIT_MODES = ("strict", "skip", "off")
# Paper 001 eq. 3.3 with λ_inter = λ_intra = 1.
PAPER_LOSS = [WeightedTerm("inter", 1.0), WeightedTerm("intra_image", 1.0), WeightedTerm("intra_text", 1.0)]


def open_clip_teacher(teacher: Any, recipe: Recipe) -> tuple[Any, str]:
    """(teacher, spec string to record). A string is loaded; an object with encode_image/encode_text is used as is."""
    if teacher is None or isinstance(teacher, str):
        spec = teacher or recipe.teacher
        if spec.startswith("cnn:"):
            raise UserError(f"teacher '{spec}' is a CNN classifier; DistillCLIP needs a CLIP teacher (proxy-digits-large, ARCH:TAG, ...)")
        return ClipTeacher.load(spec), spec
    for attribute in ("encode_image", "encode_text", "tokenize", "preprocess", "identity"):
        if not hasattr(teacher, attribute):
            raise UserError(f"the teacher has no {attribute}; DistillCLIP needs a CLIP teacher with image and text towers")
    return teacher, str(getattr(teacher, "name", "teacher"))


def loss_for(recipe: Recipe) -> WeightedLoss:
    """The recipe's `distill.loss`, or the paper's inter + intra_image + intra_text."""
    criterion = criterion_from_config(recipe.distill) if recipe.distill.loss else WeightedLoss(list(PAPER_LOSS))
    criterion.check_inputs(DUAL_ENCODER_INPUTS, "distillclip")
    return criterion


def build_student_clip(recipe: Recipe, teacher: Any, log: Any = print) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """The dual-encoder student with its text tower initialised from the teacher per `distill.text_init`.

    Returns (model, spec, text_init record). `strict`: a teacher that cannot initialise the
    student is a UserError (exit 2); `skip`: log which init was skipped and why, continue from
    random init; `off`: no initialisation.
    """
    mode = recipe.distill.text_init
    if mode not in TEXT_INIT_MODES:
        raise UserError(f"distill.text_init must be one of {', '.join(TEXT_INIT_MODES)}, got '{mode}'")
    entry = STUDENTS.get(recipe.student.name)
    if entry.kind != "dual_encoder":
        raise UserError(f"student '{recipe.student.name}' is a {entry.kind}; distillclip needs a dual encoder "
                        "(distillclip_vit_s16, distillclip_vit_s32, distillclip_mobilenetv3, distillclip_digits; see edgeclip list students)")
    image_size = recipe.student.image_size or None
    teacher_model = getattr(teacher, "model", None)
    record: dict[str, Any] = {"mode": mode}
    if mode == "off" or teacher_model is None:
        model, spec = create_student(recipe.student.name, image_size=image_size)
        record["init_skipped"] = "distill.text_init=off" if mode == "off" else "the teacher has no open_clip model"
    else:
        try:
            model, spec = create_student(recipe.student.name, image_size=image_size, teacher_model=teacher_model)
            record.update(spec.extra.get("text_init") or {})
        except UserError as err:
            if mode == "strict":
                raise UserError(f"{err} (or set distill.text_init=skip to train the text tower from random init)") from None
            model, spec = create_student(recipe.student.name, image_size=image_size)
            record["init_skipped"] = f"text tower init from the teacher skipped: {err}"
            log(f"warning: {record['init_skipped']}; continuing from random init (distill.text_init=skip)")
    return model, spec, record
