"""CLIP teachers: open_clip wrapper, zero-shot heads, on-disk output cache, the proxy teacher."""

from edgeclip.teacher.clip_teacher import PROXY_DESCRIPTIONS, PROXY_TEACHERS, ClipTeacher, ZeroShotHead
from edgeclip.teacher import proxy as _proxy  # noqa: F401  (registers proxy-digits)
from edgeclip.teacher import proxy_cifar10 as _proxy_cifar10  # noqa: F401  (registers proxy-cifar10)

__all__ = ["ClipTeacher", "ZeroShotHead", "PROXY_DESCRIPTIONS", "PROXY_TEACHERS"]
